//! The admin subcommands against a host that cannot answer for a moment
//! (503: its journal or cluster is busy — e.g. a stream a new cluster has
//! just created is not yet on every node): idempotent requests are tried
//! again, saying so; a POST is not, so nothing is done twice.

mod common;

use common::{Recorder, plugin_path, root};
use std::process::Output;
use std::time::{Duration, Instant};

const TOKEN: &str = "admin-token-for-tests";

/// Start `gridlet <args>` against `url`; its output when it ends.
fn gridlet(args: &[&str], url: &str) -> tokio::task::JoinHandle<Output> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridlet"));
    command
        .args(args)
        .current_dir(root())
        .env("GRIDLET_URL", url)
        .env("GRIDLET_ADMIN_TOKEN", TOKEN);
    tokio::spawn(async move { command.output().await.expect("gridlet runs") })
}

/// Start `gridlet plugins push` of the model-promotion example to `host`.
fn push(host: &Recorder) -> tokio::task::JoinHandle<Output> {
    let wasm = plugin_path("model-promotion");
    gridlet(
        &["plugins", "push", wasm.to_str().expect("utf-8")],
        &host.url(""),
    )
}

/// Answer 503 with an RFC 9457 body, as the admin API does.
fn unavailable(host: &Recorder) {
    host.answer(503);
    host.answer_body(
        br#"{"type":"about:blank","title":"The cluster cannot answer now","status":503,"detail":"journal: no stream found for given subject"}"#
            .to_vec(),
    );
}

async fn wait_for_requests(host: &Recorder, n: usize) {
    let started = Instant::now();
    while host.received().len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for request {n}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_push_answered_503_is_tried_again_until_the_host_answers() {
    let host = Recorder::start().await;
    unavailable(&host);
    let pushing = push(&host);
    // The first attempt is refused; then the host recovers.
    wait_for_requests(&host, 1).await;
    // Body first: a request between the two lines is still a 503.
    host.answer_body(br#"{"name":"model-promotion","bytes":3,"hash":"0123456789abcdef"}"#.to_vec());
    host.answer(200);
    let out = pushing.await.expect("joined");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("503 Service Unavailable: journal: no stream found for given subject")
            && stderr.contains("trying again"),
        "{stderr}"
    );
    let received = host.received();
    assert!(received.len() >= 2, "{} requests", received.len());
    assert!(
        received
            .iter()
            .all(|r| r.method == "PUT" && r.path == "/admin/cluster/plugins/model-promotion"),
        "every attempt is the same PUT"
    );
    // Every attempt carries the whole plugin, not an emptied body.
    let sizes: Vec<usize> = received.iter().map(|r| r.body.len()).collect();
    assert!(
        sizes.iter().all(|s| *s == sizes[0] && *s > 1000),
        "{sizes:?}"
    );
}

#[tokio::test]
async fn a_host_that_stays_unavailable_fails_the_push_with_its_reason_in_bounded_time() {
    let host = Recorder::start().await;
    unavailable(&host);
    let started = Instant::now();
    let out = push(&host).await.expect("joined");
    let took = started.elapsed();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .last()
            .is_some_and(|l| l.contains("503 Service Unavailable: journal: no stream found")),
        "the last line is the reason: {stderr}"
    );
    // Pauses of 0.25, 0.5, 1, 2, 2, ... s within the 15 s it keeps trying.
    let attempts = host.received().len();
    assert!((5..=12).contains(&attempts), "{attempts} attempts");
    assert!(took < Duration::from_secs(30), "gave up after {took:?}");
}

#[tokio::test]
async fn a_push_answered_500_fails_at_once() {
    let host = Recorder::start().await;
    host.answer(500);
    let out = push(&host).await.expect("joined");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("500 Internal Server Error"), "{stderr}");
    assert_eq!(host.received().len(), 1, "only a 503 is tried again");
}

#[tokio::test]
async fn a_replay_answered_503_is_not_sent_again() {
    let host = Recorder::start().await;
    unavailable(&host);
    let out = gridlet(&["dead-letters", "replay", "7"], &host.url(""))
        .await
        .expect("joined");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("503 Service Unavailable") && !stderr.contains("trying again"),
        "{stderr}"
    );
    let received = host.received();
    assert_eq!(received.len(), 1, "a POST is sent once");
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].path, "/admin/dead-letters/replay");
}
