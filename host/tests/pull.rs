//! Pull delivery from an Event Grid namespace (against the emulator in
//! `common/namespace.rs`): events reach plugins and are acknowledged only
//! once committed; unreadable events and topics not allowed are rejected;
//! a journal that cannot take a batch releases it with a delay; 429's
//! `Retry-After` is honoured; lost lock tokens are counted and the event
//! they held comes back and is delivered once; a kill -9 between receive
//! and acknowledge loses nothing and delivers nothing twice.

mod common;

use common::fort::wait;
use common::namespace::Emulator;
use common::process::serve_logging;
use common::webhook::{Host, WORKSPACE};
use common::{Recorder, echo_grant, install};
use gridlet::pull::{Credential, PullSettings, Subscription};
use serde_json::{Value, json};
use std::time::Duration;

const KEY: &str = "namespace-access-key-for-tests";
const TOPIC: &str = "ml-events";
const SUBSCRIPTION: &str = "gridlet";

fn cloud_event(id: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id, "source": WORKSPACE,
        "type": "Microsoft.MachineLearningServices.ModelRegistered",
        "subject": "models/fraud-gbm:7", "time": "2026-11-30T00:00:00Z",
        "data": {"modelName": "fraud-gbm", "modelVersion": "7"}
    })
}

fn source(emulator: &Emulator) -> PullSettings {
    let mut p = PullSettings::new(Subscription {
        endpoint: emulator.endpoint(),
        topic: TOPIC.into(),
        subscription: SUBSCRIPTION.into(),
        credential: Credential::Key(KEY.into()),
    });
    p.max_wait = Duration::from_secs(10);
    p
}

async fn admin_sources(host: &Host) -> Value {
    host.client
        .get(format!("http://{}/admin/sources", host.server.addr))
        .bearer_auth("admin")
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json")
}

/// Ids the echo-all plugin received, sorted, duplicates kept.
fn echoed(host: &Host) -> Vec<String> {
    let mut ids: Vec<String> = host
        .sink
        .received()
        .iter()
        .map(|r| r.json())
        .filter(|j| j["plugin"] == "echo-all")
        .map(|j| j["id"].as_str().unwrap_or("").to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn events_in_a_namespace_reach_plugins_and_are_acknowledged_once_committed() {
    let emulator = Emulator::start(KEY, TOPIC, &[SUBSCRIPTION]).await;
    emulator.publish(&[cloud_event("p-1"), cloud_event("p-2"), cloud_event("p-3")]);
    let pull = source(&emulator);
    let host = Host::start(|s| {
        s.pull = vec![pull];
        s.admin_token = Some("admin".into());
    })
    .await;
    wait("three events delivered", || echoed(&host).len() == 3).await;
    wait("all acknowledged", || emulator.queued(SUBSCRIPTION) == 0).await;
    assert_eq!(echoed(&host), ["p-1", "p-2", "p-3"]);
    let echo = host
        .sink
        .received()
        .iter()
        .map(|r| r.json())
        .find(|j| j["plugin"] == "echo-all")
        .expect("echo");
    assert_eq!(echo["kind"], "model-registered");
    assert_eq!(echo["topic"], WORKSPACE);
    let status = admin_sources(&host).await;
    let s = &status["sources"][0];
    assert_eq!(s["name"], "ml-events/gridlet");
    assert_eq!(
        (s["received"].as_u64(), s["acknowledged"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(s["state"], "receiving");
    let ready: Value = host
        .client
        .get(format!("http://{}/readyz", host.server.addr))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["checks"]["pull"]["ml-events/gridlet"], "receiving");
}

#[tokio::test]
async fn an_unreadable_event_or_a_topic_not_allowed_is_rejected_and_counted() {
    let emulator = Emulator::start(KEY, TOPIC, &[SUBSCRIPTION]).await;
    let mut untyped = cloud_event("no-type");
    untyped.as_object_mut().expect("object").remove("type");
    let mut foreign = cloud_event("foreign");
    foreign["source"] = "/subscriptions/x/resourceGroups/other/providers/Microsoft.MachineLearningServices/workspaces/theirs".into();
    emulator.publish(&[untyped, cloud_event("good"), foreign]);
    let pull = source(&emulator);
    let host = Host::start(|s| {
        s.pull = vec![pull];
        s.admin_token = Some("admin".into());
    })
    .await;
    wait("settled", || emulator.queued(SUBSCRIPTION) == 0).await;
    let dead: Vec<String> = emulator
        .dead_letters(SUBSCRIPTION)
        .iter()
        .map(|e| e["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(dead, ["no-type", "foreign"]);
    wait("the good one delivered", || echoed(&host) == ["good"]).await;
    let status = admin_sources(&host).await;
    assert_eq!(status["sources"][0]["rejected"], 2);
    assert_eq!(status["sources"][0]["acknowledged"], 1);
}

#[tokio::test]
async fn a_journal_that_cannot_take_the_batch_releases_it_with_a_delay() {
    let emulator = Emulator::start(KEY, TOPIC, &[SUBSCRIPTION]).await;
    emulator.publish(&[cloud_event("busy-1"), cloud_event("busy-2")]);
    let pull = source(&emulator);
    let host = Host::start(|s| {
        s.pull = vec![pull];
        // No room for a single delivery: every batch is refused as busy.
        s.dispatch.queue_capacity = 0;
    })
    .await;
    wait("released", || emulator.calls("release") >= 1).await;
    let state = emulator.state.lock().expect("state");
    assert_eq!(
        state.release_delays[0], 10,
        "released with a delay, not at once"
    );
    assert_eq!(state.queues[SUBSCRIPTION].len(), 2, "nothing acknowledged");
    assert!(
        state.queues[SUBSCRIPTION].iter().all(|q| q.lock.is_none()),
        "released, not left locked"
    );
    drop(state);
    assert_eq!(emulator.calls("acknowledge"), 0);
    assert_eq!(host.deliveries(), 0);
}

#[tokio::test]
async fn throttling_waits_as_long_as_retry_after_says() {
    let emulator = Emulator::start(KEY, TOPIC, &[SUBSCRIPTION]).await;
    emulator.state.lock().expect("state").throttle = Some((1, 3));
    emulator.publish(&[cloud_event("after-throttle")]);
    let pull = source(&emulator);
    let host = Host::start(|s| s.pull = vec![pull]).await;
    wait("delivered after the throttle", || echoed(&host).len() == 1).await;
    let state = emulator.state.lock().expect("state");
    let throttled = state
        .calls
        .iter()
        .find(|(o, _)| o == "throttled")
        .expect("throttled once")
        .1;
    let next = state
        .calls
        .iter()
        .find(|(o, at)| o == "receive" && *at > throttled)
        .expect("received after")
        .1;
    // A lower bound only: a slow machine makes it later, never earlier.
    assert!(
        next - throttled >= Duration::from_millis(2900),
        "the next receive came {:?} after a 429 with Retry-After: 3",
        next - throttled
    );
}

/// Acknowledgements that fail (the lock was lost) are counted; the event
/// comes back when its lock expires and is acknowledged then, reaching
/// plugins once (dedup by topic and id).
#[tokio::test]
async fn a_lost_lock_token_is_counted_and_its_event_delivered_once() {
    let emulator = Emulator::start(KEY, TOPIC, &[SUBSCRIPTION]).await;
    {
        let mut state = emulator.state.lock().expect("state");
        state.lose_acknowledgements = true;
        state.lock_duration = Duration::from_millis(500);
    }
    emulator.publish(&[cloud_event("lost-ack")]);
    let pull = source(&emulator);
    let host = Host::start(|s| {
        s.pull = vec![pull];
        s.admin_token = Some("admin".into());
    })
    .await;
    wait("an acknowledgement failed", || {
        emulator.calls("acknowledge") >= 1
    })
    .await;
    emulator.state.lock().expect("state").lose_acknowledgements = false;
    wait("acknowledged on redelivery", || {
        emulator.queued(SUBSCRIPTION) == 0
    })
    .await;
    let status = admin_sources(&host).await;
    assert!(
        status["sources"][0]["failedLockTokens"].as_u64() >= Some(1),
        "{status}"
    );
    assert!(
        status["sources"][0]["received"].as_u64() >= Some(2),
        "{status}"
    );
    // Delivered once, however often received.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(echoed(&host), ["lost-ack"]);
}

/// gridlet killed (-9) after the journal committed a pulled batch but before
/// Event Grid heard the acknowledgement: the locks expire, the events come
/// back to the restarted host, which acknowledges them without making them
/// deliveries again. Every event reaches the plugin exactly once. (The
/// plugin is declared but has no file during the first run, so its
/// deliveries wait in the journal: a delivery cut off mid-call would be
/// attempted again after a restart, which is the journal's at-least-once,
/// not pull's.)
#[tokio::test]
async fn a_kill_between_receive_and_acknowledge_loses_nothing_and_repeats_nothing() {
    let emulator = Emulator::start(KEY, TOPIC, &[SUBSCRIPTION]).await;
    {
        let mut state = emulator.state.lock().expect("state");
        state.hold_acknowledgements = true;
        state.lock_duration = Duration::from_secs(1);
    }
    let ids: Vec<String> = (0..5).map(|i| format!("k-{i}")).collect();
    let events: Vec<Value> = ids.iter().map(|id| cloud_event(id)).collect();
    emulator.publish(&events);
    let sink = Recorder::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    install(dir.path(), "echo", "echo", "", &echo_grant(&sink, "echo"));
    let wasm = dir.path().join("plugins/echo.wasm");
    let aside = dir.path().join("echo.wasm");
    std::fs::rename(&wasm, &aside).expect("set the plugin aside");
    let endpoint = emulator.endpoint();
    let env = [
        ("GRIDLET_PULL_ENDPOINT", endpoint.as_str()),
        ("GRIDLET_PULL_TOPIC", TOPIC),
        ("GRIDLET_PULL_SUBSCRIPTION", SUBSCRIPTION),
        ("GRIDLET_PULL_KEY", KEY),
    ];
    let (mut first, _, _) = serve_logging(dir.path(), &env).await;
    wait("an acknowledgement is pending", || {
        emulator.calls("acknowledge") >= 1
    })
    .await;
    first.start_kill().expect("kill -9");
    let _ = first.wait().await;
    assert!(
        sink.received().is_empty(),
        "nothing delivered in the first run"
    );
    emulator.state.lock().expect("state").hold_acknowledgements = false;
    std::fs::rename(&aside, &wasm).expect("the plugin back");
    let (_second, _, _) = serve_logging(dir.path(), &env).await;
    wait("every event acknowledged", || {
        emulator.queued(SUBSCRIPTION) == 0
    })
    .await;
    wait("every event delivered", || {
        sink.received().len() >= ids.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut got: Vec<String> = sink
        .received()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or("").to_string())
        .collect();
    got.sort();
    assert_eq!(got, ids, "each event exactly once across the kill");
    assert!(emulator.dead_letters(SUBSCRIPTION).is_empty());
}

/// `host/tests/sdk/namespace.py` (the azure-eventgrid SDK) against `emulator`.
async fn sdk(emulator: &Emulator, extra: &[&str]) -> std::process::Output {
    let python = common::root().join("target/toolchains/sdk-venv/bin/python");
    assert!(
        python.exists(),
        "run `cargo xtask plugins` (it installs the pinned SDKs)"
    );
    tokio::process::Command::new(&python)
        .arg(common::root().join("host/tests/sdk/namespace.py"))
        .args([
            emulator.endpoint().as_str(),
            KEY,
            TOPIC,
            SUBSCRIPTION,
            WORKSPACE,
        ])
        .args(extra)
        .output()
        .await
        .expect("python")
}

/// The emulator is held to the real protocol: the azure-eventgrid SDK
/// publishes to it in namespace mode and receives, renews, acknowledges,
/// releases and rejects with `EventGridConsumerClient`, satisfied by every
/// answer (the SDK raises otherwise). Installed pinned by `cargo xtask
/// plugins` (`host/tests/sdk/requirements.txt`).
#[tokio::test]
async fn the_azure_sdk_is_satisfied_by_the_namespace_emulator() {
    let emulator = Emulator::start(KEY, TOPIC, &[SUBSCRIPTION]).await;
    let out = sdk(&emulator, &[]).await;
    assert!(
        out.status.success(),
        "the SDK refused the emulator:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(seen["first"], json!(["sdk-0", "sdk-1"]));
    assert_eq!(
        seen["first_types"][0],
        "Microsoft.MachineLearningServices.ModelRegistered"
    );
    assert_eq!(
        (
            seen["renewed"].as_u64(),
            seen["acked"].as_u64(),
            seen["released"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    // The released one comes back with its delivery count raised.
    assert_eq!(
        seen["second_counts"],
        json!({"sdk-1": 2, "sdk-2": 1, "sdk-3": 1})
    );
    assert_eq!(
        (seen["rejected"].as_u64(), seen["rest_acked"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(seen["stale_failed"], json!(["TokenLost"]));
    assert_eq!(emulator.queued(SUBSCRIPTION), 0);
    assert_eq!(emulator.dead_letters(SUBSCRIPTION).len(), 1);
}

/// A host that only pulls (`webhook = false`) needs no webhook auth to listen
/// on every address — nothing takes events from senders — answers 404 on
/// the webhook path, and still pulls; `/readyz` says the webhook is off.
/// Without any source it refuses to start.
#[tokio::test]
async fn a_pull_only_host_serves_no_webhook_and_needs_no_webhook_auth() {
    let emulator = Emulator::start(KEY, TOPIC, &[SUBSCRIPTION]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = |pull: Vec<PullSettings>| gridlet::serve::ServeSettings {
        listen: "0.0.0.0:0".parse().expect("addr"),
        plugins_dir: dir.path().join("plugins"),
        state_dir: dir.path().join("state"),
        webhook: false,
        pull,
        ..Default::default()
    };
    let refused = gridlet::serve::start(settings(Vec::new())).await;
    assert!(
        refused
            .err()
            .is_some_and(|e| e.to_string().contains("nothing would bring events in"))
    );
    let server = gridlet::serve::start(settings(vec![source(&emulator)]))
        .await
        .expect("a pull-only host starts without webhook auth on 0.0.0.0");
    emulator.publish(&[cloud_event("pulled-only")]);
    wait("acknowledged", || emulator.queued(SUBSCRIPTION) == 0).await;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", server.addr.port());
    let post = client
        .post(format!("{base}/api/events"))
        .body("[]")
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), 404);
    let ready: Value = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["checks"]["auth"], "webhook off");
    assert_eq!(ready["checks"]["pull"]["ml-events/gridlet"], "receiving");
}

/// An Entra token from a file or from a command is sent as `Bearer`.
#[tokio::test]
async fn entra_tokens_from_a_file_or_a_command_are_sent_as_bearer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, "entra-token-123\n").expect("token file");
    for credential in [
        Credential::TokenFile(file.clone()),
        Credential::TokenCommand(vec!["echo".into(), "entra-token-123".into()]),
    ] {
        let emulator = Emulator::start("not-the-key", TOPIC, &[SUBSCRIPTION]).await;
        emulator.state.lock().expect("state").bearer = Some("entra-token-123".into());
        emulator.publish(&[cloud_event("with-entra")]);
        let mut pull = source(&emulator);
        pull.subscription.credential = credential.clone();
        let _host = Host::start(|s| s.pull = vec![pull]).await;
        wait("acknowledged with the token", || {
            emulator.queued(SUBSCRIPTION) == 0
        })
        .await;
    }
}

/// Events the Azure SDK publishes to a namespace topic reach plugins
/// through gridlet's pull source.
#[tokio::test]
async fn events_the_azure_sdk_publishes_reach_plugins_through_pull() {
    let emulator = Emulator::start(KEY, TOPIC, &[SUBSCRIPTION]).await;
    let out = sdk(&emulator, &["publish-only"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pull = source(&emulator);
    let host = Host::start(|s| s.pull = vec![pull]).await;
    wait("the SDK's four events delivered", || {
        echoed(&host).len() == 4
    })
    .await;
    wait("acknowledged", || emulator.queued(SUBSCRIPTION) == 0).await;
    assert_eq!(echoed(&host), ["sdk-0", "sdk-1", "sdk-2", "sdk-3"]);
}

/// An answer larger than the client reads (a broken or hostile endpoint)
/// is an error, not an allocation without bound; the events stay in the
/// namespace, locked only until their locks expire.
#[tokio::test]
async fn an_answer_too_large_is_refused_not_buffered() {
    let emulator = Emulator::start(KEY, TOPIC, &[SUBSCRIPTION]).await;
    let mut big = cloud_event("big");
    big["data"]["padding"] = "x".repeat(64 * 1024).into();
    emulator.publish(&[big]);
    let client = gridlet::pull::Namespace::new(source(&emulator).subscription)
        .with_max_answer_bytes(16 * 1024);
    let error = client
        .receive(10, Duration::from_secs(10))
        .await
        .expect_err("too large");
    assert_eq!(
        error.to_string(),
        "unreadable answer: answer larger than 16384 bytes"
    );
    assert_eq!(emulator.queued(SUBSCRIPTION), 1);
}
