//! Memory follows what is kept, not what went through: 100 events of a few
//! MB each, all delivered, leave the host near where it started; the
//! metrics of millions of deliveries nobody scrapes take no more room than
//! those of one second.

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

/// Set in the process [`histogram_samples_are_folded_in_when_nobody_scrapes`]
/// starts to measure itself in.
const ALONE: &str = "GRIDLET_TEST_MEASURED_ALONE";

/// The Prometheus recorder keeps each histogram sample (16 bytes: the value
/// and when) until it is folded into the buckets, on a scrape or at an
/// upkeep. A host nobody scrapes must not keep every delivery's samples:
/// two a delivery, ≈ 2 GB an hour at 20,000 deliveries a second. Measured
/// in a process of its own (this binary again, running only this test), so
/// that no other test's memory is counted.
#[test]
fn histogram_samples_are_folded_in_when_nobody_scrapes() {
    if std::env::var_os(ALONE).is_none() {
        let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "memory::histogram_samples_are_folded_in_when_nobody_scrapes",
                "--nocapture",
            ])
            .env(ALONE, "1")
            .status()
            .expect("run the test alone");
        assert!(status.success(), "measured alone: {status}");
        return;
    }
    use gridlet::admin::metrics::{UPKEEP_EVERY, install};
    install().expect("the recorder");
    // Recorded as dispatch records each delivery's latency.
    let latency = metrics::histogram!("gridlet_delivery_latency_seconds", "plugin" => "p");
    const ROUND: usize = 1_000_000;
    let samples_bytes = (ROUND * 16) as u64;
    let round = || {
        for i in 0..ROUND {
            latency.record((i % 1000) as f64 / 1e4);
        }
        // Any stretch longer than the upkeep's period holds one.
        std::thread::sleep(UPKEEP_EVERY + std::time::Duration::from_millis(300));
    };
    // The first round's memory is the allocator's to keep and reuse.
    round();
    let before = rss(std::process::id());
    for _ in 0..6 {
        round();
    }
    let grown = rss(std::process::id()).saturating_sub(before);
    // Six rounds' samples kept would be ≈ 96 MB more.
    assert!(
        grown < 2 * samples_bytes,
        "RSS grew by {} MiB over six rounds of {ROUND} samples ({} MiB each)",
        grown >> 20,
        samples_bytes >> 20
    );
}
