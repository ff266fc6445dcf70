//! A hostile plugin beside a good one: what it floods hits its own caps
//! (connections, handles, header fields, unsent bodies, key-value quota),
//! and the good one delivers.
//! How fast the good one stays beside each is the neighbours benchmark.

use crate::common::fort::{Extra, Fort};
use crate::common::{self, Recorder, grant};
use gridlet::plugin::LimitCaps;
use gridlet::runtime::{
    BODY_CHUNK_BYTES, Entry, FailureKind, MAX_AUTHORITY_BYTES, MAX_METHOD_BYTES,
    MAX_PATH_WITH_QUERY_BYTES, Outcome,
};
use std::time::Duration;

/// Open file descriptors of this (test) process, where the in-process
/// server runs.
fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_flooding_connections_hits_its_cap_and_the_host_keeps_its_descriptors() {
    let slow = Recorder::start().await;
    slow.answer_after(Duration::from_secs(2));
    let url = slow.url("/held");
    let before = descriptors();
    let fort = Fort::start(
        vec![Extra::new(
            "opener",
            "hostile",
            "[limits]\ndeadline_ms = 20000\n",
            grant(
                &[
                    ("behaviour", "connect-flood"),
                    ("count", "1000"),
                    ("url", &url),
                ],
                &[&slow.host()],
            ),
        )],
        |_| {},
    )
    .await;
    assert_eq!(fort.post("flood-1").await, 200);
    // While the flood's connections are held, the good plugin delivers and
    // the host holds at most the cap's worth of extra descriptors.
    fort.good_still_delivers().await;
    let during = descriptors();
    assert!(
        during < before + 200,
        "descriptors: {before} before, {during} during the flood"
    );
    crate::common::fort::wait("the flood to end", || slow.received().len() >= 32).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        slow.received().len(),
        32,
        "one plugin version holds at most 32 connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_creating_handles_without_end_hits_the_table_cap() {
    let fort = Fort::start(
        vec![Extra::new(
            "hoarder",
            "hostile",
            "[retry]\nmaxDeliveryAttempts = 1\n",
            grant(&[("behaviour", "handle-flood")], &[]),
        )],
        |_| {},
    )
    .await;
    assert_eq!(fort.post("handles-1").await, 200);
    let error = fort.dead_letter("hoarder").await;
    assert!(error.starts_with("trap: "), "{error}");
    assert!(error.contains("resource table"), "{error}");
    fort.good_still_delivers().await;
}

/// Header fields live in the host, outside the plugin's memory cap: with
/// wasmtime's defaults (128 KiB per set of fields, 16,384 handles) one
/// delivery of this plugin made the host hold 1.6 GB. Now a set of fields
/// holds at most 16 KiB and an instance 2,048 handles: ≤ 32 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_hoarding_header_fields_meets_the_caps_that_bound_the_hosts_memory() {
    // 8 KiB per set of fields, kept until the handles run out; then 24 KiB
    // in one set.
    let fort = Fort::start(
        vec![
            Extra::new(
                "hoarder",
                "hostile",
                "[retry]\nmaxDeliveryAttempts = 1\n",
                grant(&[("behaviour", "fields-bomb"), ("count", "1")], &[]),
            ),
            Extra::new(
                "stuffer",
                "hostile",
                "[retry]\nmaxDeliveryAttempts = 1\n",
                grant(&[("behaviour", "fields-bomb"), ("count", "3")], &[]),
            ),
        ],
        |_| {},
    )
    .await;
    assert_eq!(fort.post("fields-1").await, 200);
    let error = fort.dead_letter("hoarder").await;
    assert_eq!(
        error,
        "trap: resource table full: the plugin held 2048 handles (the cap)"
    );
    let error = fort.dead_letter("stuffer").await;
    assert_eq!(
        error,
        "trap: header fields too large: one set of fields may hold 16 KiB (the cap)"
    );
    fort.good_still_delivers().await;
}

/// An unsent request's body lives in the host, outside the plugin's memory
/// cap: with wasmtime's 1 MiB writes an unsent body took ≈ 2 MiB and one
/// delivery keeping 1,365 of them made the host hold 3 GB. The plugin
/// reports what its first body took before the handles ran out.
#[tokio::test]
async fn unsent_request_bodies_hold_a_few_kib_each_in_the_host() {
    let runtime = common::runtime();
    let plugin = common::load(
        &runtime,
        "hostile",
        "",
        &grant(&[("behaviour", "body-bomb")], &[]),
    );
    let invocation = runtime
        .invoke(
            &plugin.version,
            &common::event("eventgrid/run-completed.json"),
            1,
        )
        .await;
    assert!(
        invocation
            .outcome
            .to_string()
            .contains("resource table full"),
        "{}",
        invocation.outcome
    );
    let taken: usize = invocation
        .entries
        .iter()
        .find_map(|e| match e {
            Entry::Log { message, .. } => message
                .strip_prefix("an unsent body took ")
                .and_then(|m| m.strip_suffix(" bytes"))
                .and_then(|n| n.parse().ok()),
            _ => None,
        })
        .expect("the plugin says what its first body took");
    assert!(taken > 0);
    assert!(taken <= 3 * BODY_CHUNK_BYTES, "{taken} bytes");
}

/// What the plugin logged about its request's parts, in order.
fn verdicts(invocation: &gridlet::runtime::Invocation) -> Vec<&str> {
    invocation
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Log { message, .. } => message.strip_prefix("request part: "),
            _ => None,
        })
        .collect()
}

/// An unsent request's parts live in the host: wasmtime checks an
/// authority's and a method's characters, not their length, so one 1 MiB
/// string set on every request a plugin could hold asked the host for
/// gigabytes. Parts longer than any server takes are refused with the
/// setter's own error.
#[tokio::test]
async fn an_unsent_requests_authority_path_and_method_are_capped() {
    let runtime = common::runtime();
    let event = common::event("eventgrid/run-completed.json");
    let parts = |size: &str, hoard: bool| {
        let mut config = vec![("behaviour", "request-parts"), ("size", size)];
        if hoard {
            config.push(("hoard", "yes"));
        }
        common::load(&runtime, "hostile", "", &grant(&config, &[]))
    };
    let plugin = parts("1048576", false);
    let invocation = runtime.invoke(&plugin.version, &event, 1).await;
    assert_eq!(invocation.outcome, Outcome::Handled);
    assert_eq!(
        verdicts(&invocation),
        ["authority refused", "path refused", "method refused"]
    );
    // What servers take is taken.
    let plugin = parts("60", false);
    let invocation = runtime.invoke(&plugin.version, &event, 1).await;
    assert_eq!(
        verdicts(&invocation),
        ["authority taken", "path taken", "method taken"]
    );
    // At the caps, each part is taken; one byte more is not.
    for (size, verdict) in [
        (MAX_AUTHORITY_BYTES, "authority taken"),
        (MAX_AUTHORITY_BYTES + 1, "authority refused"),
        (MAX_PATH_WITH_QUERY_BYTES, "path taken"),
        (MAX_PATH_WITH_QUERY_BYTES + 1, "path refused"),
        (MAX_METHOD_BYTES, "method taken"),
        (MAX_METHOD_BYTES + 1, "method refused"),
    ] {
        let plugin = parts(&size.to_string(), false);
        let invocation = runtime.invoke(&plugin.version, &event, 1).await;
        assert!(
            verdicts(&invocation).contains(&verdict),
            "{size}: {:?}",
            verdicts(&invocation)
        );
    }
    // Hoarding requests at the caps ends at the handles' cap.
    let plugin = parts("1024", true);
    let invocation = runtime.invoke(&plugin.version, &event, 1).await;
    assert!(
        invocation
            .outcome
            .to_string()
            .contains("resource table full"),
        "{}",
        invocation.outcome
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_writing_1mib_values_in_a_loop_hits_its_quota_while_webhooks_commit() {
    let mut flooder = grant(&[("behaviour", "kv-flood")], &[]);
    // Sixteen times the default pace: each delivery rewrites its 7 MiB
    // before the quota refuses the 8th value, and the journal takes that
    // flood beside the webhook's commits.
    flooder.caps = LimitCaps {
        kv_bytes: 8 * 1024 * 1024,
        kv_write_bytes_per_second: 64 * 1024 * 1024,
        ..LimitCaps::default()
    };
    let fort = Fort::start(
        vec![Extra::new(
            "filler",
            "hostile",
            "[limits]\ndeadline_ms = 60000\n",
            flooder,
        )],
        |_| {},
    )
    .await;
    // The flood and a stream of webhook requests at once.
    assert_eq!(fort.post("fill-1").await, 200);
    for i in 0..50 {
        assert_eq!(fort.post(&format!("beside-{i}")).await, 200, "request {i}");
    }
    fort.good_still_delivers().await;
    let db = fort.dir.path().join("state/journal.sqlite3");
    let conn = rusqlite::Connection::open(db).expect("open");
    let started = std::time::Instant::now();
    let stored = loop {
        let (keys, bytes): (i64, Option<i64>) = conn
            .query_row(
                "SELECT count(*), sum(length(value)) FROM kv WHERE namespace = 'filler'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("usage");
        // The flood stops at the quota: at most 7 full values fit in 8 MiB.
        if keys >= 7 || started.elapsed() > Duration::from_secs(30) {
            break (keys, bytes.unwrap_or(0));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stored.0, 7, "{stored:?}");
    assert!(stored.1 <= 8 * 1024 * 1024, "{stored:?}");
    // The flooder gets every event (it has no filter: 51 here and the one
    // "good" was sent) and each delivery ended normally: the quota is an
    // error it saw, not a trap.
    let started = std::time::Instant::now();
    while fort.server.dispatcher.plugin_counters("filler").delivered != 52 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the flooder did not handle all 52 events: {:?} {}",
            fort.server.dispatcher.plugin_counters("filler"),
            fort.status("filler").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let journal = fort.server.dispatcher.journal().clone();
    assert!(
        journal
            .dead_letters(Some("filler"))
            .expect("letters")
            .is_empty()
    );
}

/// Key-value reads are the host's work on threads apart from the guest's:
/// a plugin reading a 1 MiB value in a loop made its neighbour's p99 5×
/// alone (the neighbours benchmark), so reads are paced like writes, and a
/// lookup counts as at least 4 KiB whatever it returns.
#[tokio::test]
async fn a_plugin_reading_in_a_loop_is_held_to_its_read_pace() {
    let runtime = common::runtime();
    let event = common::event("eventgrid/model-registered.json");
    let reader = |size: &str, count: &str, mib_per_second: u64| {
        let mut g = grant(
            &[
                ("behaviour", "kv-read-flood"),
                ("size", size),
                ("count", count),
            ],
            &[],
        );
        g.caps = LimitCaps {
            kv_read_bytes_per_second: mib_per_second * 1024 * 1024,
            ..LimitCaps::default()
        };
        g
    };
    let outcome = |size: &'static str, count: &'static str, pace: u64| {
        let runtime = &runtime;
        let event = &event;
        async move {
            let limits = "[limits]\ndeadline_ms = 3000\n";
            let plugin = common::load(runtime, "hostile", limits, &reader(size, count, pace));
            runtime.invoke(&plugin.version, event, 1).await.outcome
        }
    };
    let deadline = |o: &Outcome| matches!(o, Outcome::Failed(f) if f.kind == FailureKind::Deadline);
    // 30 reads of 1 MiB at 1 MiB/s take 29 s: the 3 s deadline ends them.
    let paced = outcome("1048576", "30", 1).await;
    assert!(deadline(&paced), "{paced:?}");
    // Unpaced (0), the same reads end at once.
    assert_eq!(outcome("1048576", "30", 0).await, Outcome::Handled);
    // 2,000 lookups of a 10-byte value count 4 KiB each: 8 MiB, 7 s at
    // 1 MiB/s; counted by what they return they would take 20 KiB.
    let lookups = outcome("10", "2000", 1).await;
    assert!(deadline(&lookups), "{lookups:?}");
    // At the default pace (16 MiB/s, a second of burst) they go at once.
    assert_eq!(
        outcome(
            "10",
            "2000",
            LimitCaps::default().kv_read_bytes_per_second / (1 << 20)
        )
        .await,
        Outcome::Handled
    );
}
