//! What is accepted is readable back, exactly as accepted; and one stored
//! event that cannot be read only costs its own delivery.

use crate::common::fort::{Fort, wait};
use gridlet::journal::{Journal, NewEvent, SqliteJournal};
use serde_json::{Value, json};
use std::sync::Arc;

/// An event whose `data` nests `depth` objects deep.
fn deep_event(id: &str, depth: usize) -> String {
    let mut data = "{\"leaf\": 1}".to_string();
    for _ in 1..depth {
        data = format!("{{\"a\": {data}}}");
    }
    format!(
        r#"{{"id": "{id}", "topic": "/ws", "subject": "deep", "eventType": "Custom.Deep", "data": {data}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_nested_to_the_parsers_limit_is_delivered_after_a_restart() {
    // The good plugin's sink is down at first: every delivery waits in the
    // journal, so after the restart each event is read back from there.
    // Retries half a second apart: a restart slowed by a loaded machine
    // must not use up the 30 attempts before the sink is back.
    let slow_retries = |s: &mut gridlet::serve::ServeSettings| {
        s.dispatch.retry_delays = vec![std::time::Duration::from_millis(500)];
    };
    let fort = Fort::start(vec![], slow_retries).await;
    fort.good_sink.answer(503);
    // The array and the event take two levels; data takes the other 126.
    let body = format!("[{}]", deep_event("deep-1", 126));
    let r = fort
        .client
        .post(fort.webhook())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200, "accepted at the parser's limit");
    for i in 0..20 {
        assert_eq!(fort.post(&format!("after-{i}")).await, 200);
    }
    wait("the first attempts", || {
        fort.good_sink.received().len() >= 21
    })
    .await;
    let fort = fort.restart(slow_retries).await;
    // Only what reaches the sink from here on was read back from the journal.
    let before = fort.good_sink.received().len();
    fort.good_sink.answer(200);
    let sink = fort.good_sink.clone();
    let after_restart =
        || -> Vec<Value> { sink.received()[before..].iter().map(|r| r.json()).collect() };
    wait("every event delivered after the restart", || {
        let ids: std::collections::HashSet<String> = after_restart()
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_string))
            .collect();
        ids.len() == 21
    })
    .await;
    // The deep payload came back from the journal whole.
    let deep = after_restart()
        .into_iter()
        .find(|e| e["id"] == "deep-1")
        .expect("deep delivered after the restart");
    assert!(deep["attempt"].as_u64() > Some(1), "a retry: {deep}");
    let mut at = &deep["data"];
    let mut levels = 1;
    while let Some(inner) = at.get("a") {
        at = inner;
        levels += 1;
    }
    // The echo plugin's own JSON parser has the same limit; what it got
    // back is the data 126 levels deep.
    assert_eq!(levels, 126);
    fort.good_still_delivers().await;
}

#[tokio::test]
async fn a_binary_event_too_deep_to_store_is_refused_at_ingest() {
    // Binary mode: the body is the data, and the stored event wraps it one
    // level deeper — a body at the limit would be accepted and unreadable.
    let fort = Fort::start(vec![], |_| {}).await;
    let mut data = "1".to_string();
    for _ in 0..128 {
        data = format!("{{\"a\": {data}}}");
    }
    let r = fort
        .client
        .post(fort.webhook())
        .header("content-type", "application/json")
        .header("ce-specversion", "1.0")
        .header("ce-id", "deep-binary")
        .header("ce-source", "/ws")
        .header("ce-type", "Custom.Deep")
        .body(data)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let problem: Value = r.json().await.expect("problem");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("recursion limit"),
        "{problem}"
    );
    fort.good_still_delivers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_stored_event_dead_letters_only_its_own_delivery() {
    let fort = Fort::start(vec![], |_| {}).await;
    fort.good_sink.answer(503);
    for id in ["before", "broken", "after"] {
        assert_eq!(fort.post(id).await, 200);
    }
    wait("first attempts", || fort.good_sink.received().len() >= 3).await;
    // A damaged row (a disk error, a hand edit): not JSON any more.
    let db = fort.dir.path().join("state/journal.sqlite3");
    let conn = rusqlite::Connection::open(&db).expect("open");
    let n = conn
        .execute(
            "UPDATE events SET body = '{\"id\": broken' WHERE event_id = 'broken'",
            [],
        )
        .expect("damage");
    assert_eq!(n, 1);
    // Restart: nothing is cached, every event is read from the journal.
    let fort = fort.restart(|_| {}).await;
    fort.good_sink.answer(200);
    let sink = fort.good_sink.clone();
    wait("the readable ones delivered", || {
        let ids: Vec<String> = sink
            .received()
            .iter()
            .filter(|r| r.json()["attempt"].as_u64() > Some(1))
            .filter_map(|r| r.json()["id"].as_str().map(str::to_string))
            .collect();
        ids.contains(&"before".to_string()) && ids.contains(&"after".to_string())
    })
    .await;
    let journal = fort.server.dispatcher.journal().clone();
    let started = std::time::Instant::now();
    let letter = loop {
        let letters = journal.dead_letters(Some("good")).expect("dead letters");
        if let Some(l) = letters.into_iter().next() {
            break l;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(letter.reason, "EventUnreadable");
    assert_eq!(letter.event_id, "broken");
    assert!(
        letter.last_error.starts_with("stored event: "),
        "{}",
        letter.last_error
    );
    fort.good_still_delivers().await;
}

#[tokio::test]
async fn a_journal_written_by_the_previous_version_is_read_back() {
    // Version 1 stored each event wrapped in one JSON object with the aeg-*
    // headers, in a table without the newer columns.
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let conn = rusqlite::Connection::open(dir.path().join("journal.sqlite3")).expect("open");
        conn.execute_batch(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, topic_key TEXT NOT NULL,
                 event_id TEXT NOT NULL, body TEXT NOT NULL, received_at INTEGER NOT NULL);
             CREATE UNIQUE INDEX events_identity ON events (topic_key, event_id);
             CREATE TABLE deliveries (id INTEGER PRIMARY KEY, event_seq INTEGER NOT NULL,
                 plugin TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                 due_at INTEGER NOT NULL, last_error TEXT NOT NULL DEFAULT '');",
        )
        .expect("v1 schema");
        let body = json!({
            "event": {"id": "old-1", "topic": "/ws", "subject": "s", "eventType": "T",
                      "eventTime": "", "dataVersion": "", "data": {"x": 1}},
            "subscription": "sub-a", "deliveryCount": 2, "dataVersionHeader": null
        })
        .to_string();
        conn.execute(
            "INSERT INTO events VALUES (1, '/ws', 'old-1', ?1, 0)",
            [body],
        )
        .expect("row");
        conn.execute(
            "INSERT INTO deliveries (event_seq, plugin, due_at) VALUES (1, 'p', 0)",
            [],
        )
        .expect("delivery");
    }
    let journal = SqliteJournal::open(dir.path(), false).expect("migrates");
    let claimed = journal
        .claim_due(gridlet::journal::now_ms(), 10, &[], 10, &[])
        .expect("claim");
    assert!(claimed.unreadable.is_empty(), "{:?}", claimed.unreadable);
    assert_eq!(
        claimed.due[0].ttl_from_ms, 0,
        "its time-to-live counts from its event's acceptance"
    );
    let event = &claimed.due[0].event;
    assert_eq!(event.id, "old-1");
    assert_eq!(event.data_json(), r#"{"x":1}"#);
    assert_eq!(event.delivery.subscription_name.as_deref(), Some("sub-a"));
    // Its attempts' errors are kept from now on (a column the migration
    // added).
    let old = claimed.due[0].id;
    journal.retry_at(old, 0, "first").expect("retry");
    let again = journal
        .claim_due(gridlet::journal::now_ms(), 10, &[], 10, &[])
        .expect("claim");
    journal
        .dead_letter(
            again.due[0].id,
            gridlet::journal::DeadLetterReason::Rejected,
            "second",
            0,
            2,
        )
        .expect("dead letter");
    let letter = journal.dead_letters(None).expect("list").remove(0);
    assert_eq!(letter.errors, ["first", "second"]);
    // Replayed, it is a new delivery with its time-to-live from the replay
    // (a column version 4 added).
    let replayed = journal.replay(&[letter.id], 5_000, false).expect("replay");
    assert_eq!(replayed.replayed, 1);
    let replay = journal
        .claim_due(gridlet::journal::now_ms(), 10, &[], 10, &[])
        .expect("claim");
    assert_eq!(
        (replay.due[0].event.id.as_str(), replay.due[0].ttl_from_ms),
        ("old-1", 5_000)
    );
    journal.complete(replay.due[0].id).expect("complete");
    // And new events go in beside it.
    let new = gridlet::event::parse_event_grid(
        &json!({"id": "new-1", "subject": "s", "eventType": "T"}),
        0,
    )
    .expect("event");
    let appended = journal
        .append(vec![NewEvent {
            event: Arc::new(new),
            plugins: vec!["p".into()],
        }])
        .expect("append");
    assert_eq!(appended.deliveries, 1);
    assert_eq!(
        journal.outstanding(),
        1,
        "the new one (the old one is a dead letter)"
    );
}
