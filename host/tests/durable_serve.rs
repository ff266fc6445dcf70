//! Durable delivery through the `gridlet` process: a crash test (kill -9 in
//! the middle of concurrent senders, restart, every acknowledged event is
//! delivered), and the dead-letter admin API and CLI. Each delivery test
//! runs on both journals: `sqlite::…` (the embedded default) and
//! `jetstream::…` (cluster mode, on a real `nats-server`).

mod common;

use common::nats::NatsServer;
use common::{Recorder, echo_grant, install, root};
use gridlet::journal::Journal;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Which journal a test's hosts use.
enum Backend {
    Sqlite,
    JetStream(NatsServer),
}

impl Backend {
    fn sqlite() -> Self {
        Self::Sqlite
    }

    fn jetstream() -> Self {
        Self::JetStream(NatsServer::start())
    }

    /// `dir`'s gridlet.toml names the cluster (once).
    fn configure(&self, dir: &Path) {
        let Self::JetStream(nats) = self else { return };
        let config = dir.join("gridlet.toml");
        let mut text = std::fs::read_to_string(&config).unwrap_or_default();
        if !text.contains("[cluster]") {
            // A killed host's deliveries go to the next one after 2 s.
            text.push_str(&format!(
                "\n[cluster]\nurls = [\"{}\"]\nreplicas = 1\nack_wait_ms = 2000\n",
                nats.url()
            ));
            std::fs::write(&config, text).expect("gridlet.toml");
        }
    }

    /// Deliveries not done, as the journal counts them.
    fn pending(&self, dir: &Path) -> u64 {
        let journal: Box<dyn Journal> = match self {
            Self::Sqlite => Box::new(
                gridlet::journal::SqliteJournal::open(&dir.join("state"), true).expect("journal"),
            ),
            Self::JetStream(nats) => Box::new(
                gridlet::journal::JetStreamJournal::connect(gridlet::journal::ClusterSettings {
                    urls: vec![nats.url()],
                    ..Default::default()
                })
                .expect("journal"),
            ),
        };
        journal.pending().expect("pending")
    }
}

crate::on_each_backend!(
    every_acknowledged_event_is_delivered_after_kill_9,
    dead_letters_through_the_admin_api_and_cli,
    a_trapping_plugin_is_retried_then_dead_lettered_with_the_trap,
    sigterm_finishes_running_deliveries_and_leaves_the_rest_pending,
);

/// Start `gridlet serve` on `port` over `dir` (plugins in `dir/plugins`,
/// journal in `dir/state` or the cluster `backend` names).
async fn serve(dir: &Path, port: u16, backend: &Backend, extra: &[(&str, &str)]) -> Child {
    backend.configure(dir);
    let mut command = Command::new(env!("CARGO_BIN_EXE_gridlet"));
    command
        .arg("serve")
        .current_dir(dir)
        .env("GRIDLET_LISTEN", format!("127.0.0.1:{port}"))
        .env("GRIDLET_PLUGINS_DIR", dir.join("plugins"))
        .env("GRIDLET_STATE_DIR", dir.join("state"))
        .env("GRIDLET_SECRET", "crash-secret")
        .env("GRIDLET_RETRY_DELAYS_MS", "20,50")
        .env_remove("GRIDLET_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    // The operator's grants, written by `install`.
    if dir.join("gridlet.toml").exists() {
        command.env("GRIDLET_CONFIG", dir.join("gridlet.toml"));
    }
    for (k, v) in extra {
        command.env(k, v);
    }
    let child = command.spawn().expect("serve starts");
    common::process::plugins_loaded(&format!("http://127.0.0.1:{port}")).await;
    child
}

fn batch(sender: usize, n: usize) -> Value {
    Value::Array(
        (0..10)
            .map(|i| {
                json!({
                    "id": format!("s{sender}-b{n}-e{i}"),
                    "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w",
                    "subject": "models/m:1",
                    "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
                    "eventTime": "2026-11-28T00:00:00Z",
                    "data": {"modelName": "m", "modelVersion": n}
                })
            })
            .collect(),
    )
}

async fn every_acknowledged_event_is_delivered_after_kill_9(backend: Backend) {
    let sink = Recorder::start().await;
    // A slow service: deliveries back up behind ingest, so many are pending at the kill.
    sink.answer_after(Duration::from_millis(20));
    let dir = tempfile::tempdir().expect("tempdir");
    install(
        dir.path(),
        "echo",
        "echo",
        "[limits]\nmax_concurrency = 4\n",
        &echo_grant(&sink, "echo"),
    );
    let port = free_port();
    let mut server = serve(dir.path(), port, &backend, &[]).await;

    // Four senders post batches of 10 until the server dies.
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let url = format!("http://127.0.0.1:{port}/api/events?code=crash-secret");
    let mut senders = Vec::new();
    for sender in 0..4 {
        let (acked, url) = (acked.clone(), url.clone());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0..200 {
                let body = batch(sender, n);
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 200 => {
                        let mut acked = acked.lock().expect("lock");
                        for e in body.as_array().expect("array") {
                            acked.insert(e["id"].as_str().expect("id").to_string());
                        }
                    }
                    // Not acknowledged: Event Grid would send it again.
                    Ok(_) | Err(_) => return,
                }
            }
        }));
    }
    // Kill -9 mid-stream.
    while acked.lock().expect("lock").len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.start_kill().expect("SIGKILL");
    server.wait().await.expect("dead");
    for s in senders {
        let _ = s.await;
    }
    let acked = acked.lock().expect("lock").clone();
    let delivered_before: HashSet<String> = delivered(&sink);
    assert!(acked.len() >= 300);
    assert!(
        delivered_before.len() < acked.len(),
        "the kill left deliveries pending ({} of {})",
        delivered_before.len(),
        acked.len()
    );

    // Restart on the same journal: the rest are delivered.
    sink.answer_after(Duration::ZERO);
    let _server = serve(dir.path(), free_port(), &backend, &[]).await;
    let started = Instant::now();
    loop {
        let got = delivered(&sink);
        let missing: Vec<&String> = acked.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} acknowledged events never delivered, e.g. {:?}",
            missing.len(),
            missing.iter().take(3).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POST `examples/events/eventgrid/<file>` with the secret; the status.
async fn post_sample(base: &str, file: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/api/events?code=crash-secret"))
        .body(std::fs::read(root().join("examples/events/eventgrid").join(file)).expect("sample"))
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

fn delivered(sink: &Recorder) -> HashSet<String> {
    sink.received()
        .iter()
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .filter_map(|j| j["id"].as_str().map(str::to_string))
        .collect()
}

async fn gridlet(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gridlet"))
        .args(args)
        .current_dir(root())
        .env_remove("GRIDLET_ADMIN_TOKEN")
        .output()
        .await
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn dead_letters_through_the_admin_api_and_cli(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    // A plugin that rejects every event.
    install(
        dir.path(),
        "strict",
        "hostile",
        "",
        "config = { behaviour = \"refuse\" }",
    );
    let port = free_port();
    let _server = serve(
        dir.path(),
        port,
        &backend,
        &[("GRIDLET_ADMIN_TOKEN", "admin-token-1")],
    )
    .await;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(post_sample(&base, "model-registered.json").await, 200);

    let list = |token: &'static str| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let r = client
                .get(format!("{base}/admin/dead-letters"))
                .bearer_auth(token)
                .send()
                .await
                .expect("get");
            let status = r.status().as_u16();
            (
                status,
                serde_json::from_str::<Value>(&r.text().await.expect("body"))
                    .unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(list("wrong").await.0, 401);
    let started = Instant::now();
    let letters = loop {
        let (status, body) = list("admin-token-1").await;
        assert_eq!(status, 200);
        if body["deadLetters"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break body["deadLetters"].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no dead letter"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let letter = &letters[0];
    assert_eq!(letter["plugin"], "strict");
    assert_eq!(letter["deadLetterReason"], "Rejected");
    assert_eq!(letter["deliveryAttempts"], 1);
    assert_eq!(letter["eventId"], "d9c2e4f0-3b56-4c7d-8e9f-0a1b2c3d4e5f");
    assert_eq!(
        letter["lastError"], "unknown behaviour Some(\"<config:behaviour>\")",
        "config values stay redacted"
    );
    assert!(
        letter["deadLetteredTime"]
            .as_str()
            .expect("time")
            .ends_with('Z')
    );
    let id = letter["id"].as_i64().expect("id").to_string();

    let token = "admin-token-1";
    let url = base.as_str();
    let (code, out, err) = gridlet(&["dead-letters", "list", "--url", url, "--token", token]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("strict")
            && out.contains("Rejected")
            && out.contains("ModelRegistered d9c2e4f0"),
        "{out}"
    );
    let (code, out, _) =
        gridlet(&["dead-letters", "show", &id, "--url", url, "--token", token]).await;
    assert_eq!(code, Some(0));
    let shown: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(shown["event"]["data"]["modelName"], "fraud-gbm");

    let (code, out, _) = gridlet(&[
        "dead-letters",
        "replay",
        &id,
        "--url",
        url,
        "--token",
        token,
    ])
    .await;
    assert_eq!(code, Some(0));
    assert!(out.contains("\"replayed\": 1"), "{out}");
    // The replay is rejected again: a second dead letter; the first says it was replayed.
    let started = Instant::now();
    loop {
        let (_, body) = list(token).await;
        let all = body["deadLetters"].as_array().cloned().unwrap_or_default();
        if all.len() == 2 {
            assert!(
                all.iter()
                    .any(|d| d["id"].as_i64().map(|i| i.to_string()).as_deref()
                        == Some(id.as_str())
                        && d["replayedTime"].is_string())
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no second dead letter"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, _, err) = gridlet(&["dead-letters", "purge", "--url", url, "--token", token]).await;
    assert_eq!(code, Some(2), "purge needs a choice");
    assert!(err.contains("give dead letter ids, or --all"), "{err}");
    let (code, out, _) = gridlet(&[
        "dead-letters",
        "purge",
        "--all",
        "--plugin",
        "strict",
        "--url",
        url,
        "--token",
        token,
    ])
    .await;
    assert_eq!(code, Some(0));
    assert!(out.contains("\"purged\": 2"), "{out}");
    let (code, out, _) = gridlet(&[
        "dead-letters",
        "list",
        "--since",
        "1h",
        "--url",
        url,
        "--token",
        token,
    ])
    .await;
    assert_eq!((code, out.trim()), (Some(0), "no dead letters"));
    let (code, _, err) = gridlet(&["dead-letters", "list", "--url", url, "--token", "nope"]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("401"), "{err}");
}

#[tokio::test]
async fn without_a_token_the_admin_api_is_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("plugins")).expect("dir");
    let port = free_port();
    let _server = serve(dir.path(), port, &Backend::Sqlite, &[]).await;
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/admin/dead-letters"))
        .bearer_auth("")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
}

async fn a_trapping_plugin_is_retried_then_dead_lettered_with_the_trap(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    install(
        dir.path(),
        "crashy",
        "hostile",
        "[retry]\nmaxDeliveryAttempts = 2\n",
        "config = { behaviour = \"trap\" }",
    );
    let port = free_port();
    let _server = serve(dir.path(), port, &backend, &[("GRIDLET_ADMIN_TOKEN", "t")]).await;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(post_sample(&base, "run-completed.json").await, 200);
    let started = Instant::now();
    loop {
        let body: Value = serde_json::from_str(
            &client
                .get(format!("{base}/admin/dead-letters?plugin=crashy"))
                .bearer_auth("t")
                .send()
                .await
                .expect("get")
                .text()
                .await
                .expect("body"),
        )
        .expect("json");
        if let Some(d) = body["deadLetters"].as_array().and_then(|a| a.first()) {
            assert_eq!(d["deadLetterReason"], "MaxDeliveryAttemptsExceeded");
            assert_eq!(
                d["deliveryAttempts"], 2,
                "the manifest's maxDeliveryAttempts"
            );
            let error = d["lastError"].as_str().expect("error");
            assert!(
                error.starts_with("trap: wasm trap: wasm `unreachable` instruction executed"),
                "{error}"
            );
            assert!(
                error.contains("hostile plugin panicked on purpose"),
                "{error}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no dead letter"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sigterm_finishes_running_deliveries_and_leaves_the_rest_pending(backend: Backend) {
    let sink = Recorder::start().await;
    sink.answer_after(Duration::from_millis(300));
    let dir = tempfile::tempdir().expect("tempdir");
    install(
        dir.path(),
        "echo",
        "echo",
        "[limits]\nmax_concurrency = 1\n",
        &echo_grant(&sink, "echo"),
    );
    let port = free_port();
    let server = serve(
        dir.path(),
        port,
        &backend,
        &[("GRIDLET_SHUTDOWN_GRACE_MS", "10000")],
    )
    .await;
    let response = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/api/events?code=crash-secret"
        ))
        .body(batch(0, 0).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    // One delivery is running (the sink is answering slowly)...
    let started = Instant::now();
    while sink.received().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no delivery started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ...when the host is told to stop.
    let pid = server.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(20), server.wait_with_output())
        .await
        .expect("exits within the grace period")
        .expect("exit status");
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(
        sink.received().len(),
        1,
        "no new delivery started while stopping"
    );
    assert_eq!(
        backend.pending(dir.path()),
        9,
        "the running one finished; nine wait"
    );

    // The next start delivers the rest.
    sink.answer_after(Duration::ZERO);
    let _server = serve(dir.path(), free_port(), &backend, &[]).await;
    let started = Instant::now();
    while delivered(&sink).len() < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "only {} delivered",
            delivered(&sink).len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
