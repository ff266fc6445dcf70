//! What the host keeps over time is bounded: events no plugin wants keep
//! only their dedup key, finished events shed their text, dead letters
//! expire, and metric labels do not take whatever a sender sends.

use crate::common::fort::{Extra, Fort, wait};
use crate::common::{self, grant};
use gridlet::journal::{Journal, JournalSettings, NewEvent, SqliteJournal};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn bodies(db: &std::path::Path) -> Vec<(String, usize)> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare("SELECT event_id, length(body) FROM events ORDER BY seq")
        .expect("query");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn events_no_plugin_wants_keep_only_their_dedup_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = SqliteJournal::open(dir.path(), false).expect("journal");
    let event = || {
        let value = json!({"id": "nobody-1", "topic": "/ws", "subject": "s",
                           "eventType": "T", "data": {"blob": "x".repeat(100_000)}});
        NewEvent {
            event: Arc::new(gridlet::event::parse_event_grid(&value, 0).expect("event")),
            plugins: Vec::new(),
        }
    };
    let appended = journal.append(vec![event()]).expect("append");
    assert_eq!((appended.events, appended.deliveries), (1, 0));
    let db = dir.path().join("journal.sqlite3");
    assert_eq!(
        bodies(&db),
        [("nobody-1".to_string(), 0)],
        "the key, not the text"
    );
    // The key still dedups.
    let again = journal.append(vec![event()]).expect("append");
    assert_eq!(again.duplicates, 1);
    assert_eq!(bodies(&db).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_events_shed_their_text_and_old_dead_letters_are_purged() {
    let fort = Fort::start(
        vec![Extra::new(
            "refuser",
            "hostile",
            "",
            grant(&[("behaviour", "refuse")], &[]),
        )],
        |s| {
            s.journal = JournalSettings {
                durable: false,
                dead_letter_retention: Duration::from_millis(300),
                purge_every: Duration::from_millis(100),
                shed_after: Duration::from_millis(100),
            };
        },
    )
    .await;
    assert_eq!(fort.post("kept-1").await, 200);
    fort.dead_letter("refuser").await;
    let journal = fort.server.dispatcher.journal().clone();
    wait("the dead letter purged", || {
        journal
            .dead_letters(Some("refuser"))
            .map(|l| l.is_empty())
            .unwrap_or(false)
    })
    .await;
    // Delivered to "good", its dead letter purged: only the dedup key stays.
    let db = fort.dir.path().join("state/journal.sqlite3");
    wait("the text shed", || {
        bodies(&db)
            .iter()
            .any(|(id, len)| id == "kept-1" && *len == 0)
    })
    .await;
    fort.good_still_delivers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_event_types_share_one_metric_label() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = common::Recorder::start().await;
    common::install(
        dir.path(),
        "good",
        "echo",
        "",
        &common::echo_grant(&sink, "good"),
    );
    let (_child, base, _log) = common::process::serve_logging(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/api/events?code={}", crate::common::fort::SECRET);
    for i in 0..50 {
        let body = json!([{"id": format!("odd-{i}"), "subject": "s",
                           "eventType": format!("Sender.Chosen.Type{i}"), "data": {}}]);
        assert_eq!(
            client
                .post(&url)
                .json(&body)
                .send()
                .await
                .expect("post")
                .status(),
            200
        );
    }
    let registered = json!([{"id": "known-1", "subject": "s",
        "eventType": "Microsoft.MachineLearningServices.ModelRegistered", "data": {}}]);
    client
        .post(&url)
        .json(&registered)
        .send()
        .await
        .expect("post");
    wait("delivered", || sink.received().len() == 51).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = crate::common::process::metrics(&client, &base).await;
    let mut labels: Vec<&str> = metrics
        .split("event_type=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    labels.sort();
    labels.dedup();
    assert_eq!(labels, ["ModelRegistered", "Other"], "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_reasons_are_cut_before_they_are_logged_or_stored() {
    // Two plugins answer every event with an 8 MiB reason: one rejects, one
    // asks for retries until its two attempts run out. Before the host cut
    // reasons, each attempt wrote its 8 MiB to the journal (≈ 300 MiB for
    // these 10 events) and each plugin's recent invocations held 50 of them.
    let long = |outcome: &str| {
        grant(
            &[
                ("behaviour", "long-reason"),
                ("outcome", outcome),
                ("token", "tok-secret-value-1234"),
            ],
            &[],
        )
    };
    let fort = Fort::start(
        vec![
            Extra::new("rejecter", "hostile", "", long("reject")),
            Extra::new(
                "retrier",
                "hostile",
                "[retry]\nmaxDeliveryAttempts = 2\n",
                long("retry"),
            ),
        ],
        |_| {},
    )
    .await;
    for i in 0..10 {
        assert_eq!(fort.post(&format!("long-{i}")).await, 200);
    }
    let journal = fort.server.dispatcher.journal().clone();
    wait("every event dead-lettered by both", || {
        ["rejecter", "retrier"].iter().all(|p| {
            journal
                .dead_letters(Some(p))
                .map(|l| l.len() == 10)
                .unwrap_or(false)
        })
    })
    .await;
    let cut = format!("… ({} bytes in all)", 8 << 20);
    for plugin in ["rejecter", "retrier"] {
        for letter in journal.dead_letters(Some(plugin)).expect("dead letters") {
            let error = &letter.last_error;
            assert!(error.len() <= 2048 + 64, "{plugin}: {} bytes", error.len());
            assert!(error.ends_with(&cut), "{plugin}: …{}", &error[2000..]);
            assert!(!error.contains("tok-secret"), "{plugin}: {}", &error[..80]);
            assert!(letter.errors.iter().all(|e| e.len() <= 2048 + 64));
        }
        let recent: serde_json::Value = fort
            .client
            .get(format!(
                "http://{}/admin/plugins/{plugin}/invocations",
                fort.server.addr
            ))
            .bearer_auth(crate::common::fort::ADMIN_TOKEN)
            .send()
            .await
            .expect("invocations")
            .json()
            .await
            .expect("json");
        let reasons: Vec<usize> = recent["invocations"]
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|i| i["reason"].as_str().map(str::len))
            .collect();
        assert!(!reasons.is_empty(), "{recent}");
        assert!(reasons.iter().all(|&n| n <= 2048 + 64), "{reasons:?}");
    }
    // What the journal holds on disk, with its write-ahead log.
    let state = fort.dir.path().join("state");
    let on_disk: u64 = std::fs::read_dir(&state)
        .expect("state")
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    assert!(on_disk < 16 << 20, "{on_disk} bytes in the state folder");
    fort.good_still_delivers().await;
}
