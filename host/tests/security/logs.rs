//! The host's log and the operator's terminal, written to by an attacker: a
//! plugin's log lines and stdout, a sender's event id, a dead letter's
//! fields in `gridlet dead-letters list`. Whatever they hold, one record is
//! one line, and no control character reaches the terminal
//! (docs/SECURITY.md, the rows on forged log lines).

use crate::common::fort::{SECRET, wait};
use crate::common::{self, Recorder};
use serde_json::json;
use std::time::{Duration, Instant};

/// The start of the line the hostile plugin forges (see its `forge-log`).
const FORGED: &str = "1999-01-01T00:00:00.000000Z  INFO gridlet::serve: admin token rotated";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_a_plugin_nor_a_sender_can_forge_a_line_of_the_hosts_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Recorder::start().await;
    common::install(
        dir.path(),
        "good",
        "echo",
        "",
        &common::echo_grant(&sink, "good"),
    );
    common::install(
        dir.path(),
        "forger",
        "hostile",
        "",
        "config = { behaviour = \"forge-log\" }",
    );
    // The human format, as an operator reads it on a terminal or a file.
    let (mut child, base, log) =
        common::process::serve_logging(dir.path(), &[("GRIDLET_LOG_FORMAT", "human")]).await;
    let client = reqwest::Client::new();
    // An authenticated sender's event id carries a forged line too.
    let id = format!("forge-1\n{FORGED} by the sender\r\u{1b}]0;owned\u{7}");
    let mut event = common::fort::event("forge-1");
    event["id"] = json!(id);
    let response = client
        .post(format!("{base}/api/events?code={SECRET}"))
        .json(&json!([event]))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    wait("good delivers the event, its id intact", || {
        sink.received().iter().any(|r| r.json()["id"] == id)
    })
    .await;
    let started = Instant::now();
    loop {
        let metrics = common::process::metrics(&client, &base).await;
        if metrics.contains("gridlet_delivery_success_total{plugin=\"forger\"") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the forger never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.start_kill().expect("kill");
    child.wait().await.expect("exits");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = log.lock().expect("log").clone();

    // Every line is the host's: it starts with the host's timestamp, never
    // with the forged one, and no control character but the newlines that
    // end the host's own lines is in the log at all.
    assert!(!log.is_empty());
    for line in log.lines() {
        assert!(
            line.starts_with("20") && !line.starts_with("1999"),
            "{line:?}"
        );
    }
    assert!(
        !log.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "a control character reached the log: {log:?}"
    );
    // What the plugin said is still there, escaped, on its own record's line.
    for said in [
        format!("harmless\\n{FORGED}"),
        // (tracing itself writes the escape character as `\x1b`)
        format!("hidden\\r{FORGED}\\x1b[2J"),
        format!("stdout\\r{FORGED}"),
    ] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&said)).collect();
        assert_eq!(lines.len(), 1, "{said:?} in {log}");
        assert!(lines[0].contains("plugin=\"forger\""), "{}", lines[0]);
    }
    // The sender's id is in the forger's lines, escaped.
    assert!(
        log.contains("forge-1\\n1999-01-01T00:00:00.000000Z  INFO gridlet::serve: admin token rotated by the sender\\r\\u{1b}]0;owned\\u{7}"),
        "{log}"
    );
}

/// `gridlet <args>` against a fake admin API answering `body`: its stdout,
/// checked to be `rows` lines without a control character.
async fn listing(args: &[&str], body: serde_json::Value, rows: usize) -> String {
    let host = Recorder::start().await;
    host.answer_body(body.to_string().into_bytes());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridlet"))
        .args(args)
        .env("GRIDLET_URL", host.url(""))
        .env("GRIDLET_ADMIN_TOKEN", "admin-token-for-tests")
        .output()
        .await
        .expect("gridlet runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), rows, "{stdout:?}");
    assert!(
        !stdout.chars().any(|c| c.is_control() && c != '\n'),
        "{stdout:?}"
    );
    stdout
}

#[tokio::test]
async fn listings_show_each_dead_letter_and_plugin_on_one_line_of_text() {
    // The admin API, answering as a host whose dead letter came from a
    // hostile sender: the listing is the operator's terminal.
    let letters = json!({"deadLetters": [{
        "id": 7,
        "deadLetteredTime": "2026-12-01T06:00:00Z",
        "plugin": "good",
        "deadLetterReason": "MaxDeliveryAttemptsExceeded",
        "deliveryAttempts": 3,
        "eventType": "Microsoft.MachineLearningServices.RunCompleted\u{1b}[2J",
        "eventId": format!("e-1\n{FORGED}\r\u{1b}]0;owned\u{7}"),
    }]});
    let stdout = listing(&["dead-letters", "list"], letters, 2).await;
    assert!(
        stdout.contains(&format!("e-1\\n{FORGED}\\r\\u{{1b}}]0;owned\\u{{7}}")),
        "{stdout}"
    );
    // A rejected version's reason (a compiler's error may span lines).
    let plugins = json!({"plugins": [{
        "name": "forger",
        "state": "rejected",
        "counters": {"delivered": 0, "retried": 0, "deadLettered": 0},
        "rejected": {"hash": "0123456789abcdef", "reason": format!("bad component\n{FORGED}")},
    }]});
    let stdout = listing(&["plugins"], plugins, 2).await;
    assert!(
        stdout.contains(&format!("REJECTED 0123456789ab: bad component\\n{FORGED}")),
        "{stdout}"
    );
}
