//! Memory follows what is kept, not what went through: 100 events of a few
//! MB each, all delivered, leave the host near where it started.

use crate::common;
use crate::common::process::{rss, serve_logging};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_large_events_leave_memory_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A plugin that gets every event and posts nothing: memory is the host's.
    common::install(dir.path(), "counter", "audit-counter", "", "");
    let (child, base, _log) =
        serve_logging(dir.path(), &[("GRIDLET_BODY_LIMIT_BYTES", "8388608")]).await;
    let pid = child.id().expect("pid");
    let client = reqwest::Client::new();
    let url = format!("{base}/api/events?code={}", crate::common::fort::SECRET);
    // Warm up with small events so start-up allocations are counted out.
    for i in 0..20 {
        let body =
            json!([{"id": format!("warm-{i}"), "subject": "s", "eventType": "T", "data": {}}]);
        client.post(&url).json(&body).send().await.expect("post");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(pid);
    let blob = "x".repeat(3 * 1024 * 1024);
    for i in 0..100 {
        let body = json!([{"id": format!("big-{i}"), "subject": "s", "eventType": "T", "data": {"blob": blob}}]);
        let r = client.post(&url).json(&body).send().await.expect("post");
        assert_eq!(r.status(), 200);
    }
    // Every delivery done.
    let started = Instant::now();
    loop {
        let metrics = crate::common::process::metrics(&client, &base).await;
        if metrics.contains("gridlet_deliveries_pending 0") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss(pid);
    let grown = after.saturating_sub(before);
    // 300 MB went through. What stays is bounded by the recent-events cache
    // (32 MiB of event text) and the allocator's slack, not by the traffic.
    assert!(
        grown < 128 * 1024 * 1024,
        "RSS grew by {} MiB ({} → {} MiB)",
        grown >> 20,
        before >> 20,
        after >> 20
    );
}
