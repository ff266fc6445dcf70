//! The Python, JavaScript and C example plugins, built from source by
//! `cargo xtask plugins`, on every sample event through `gridlet run`, and
//! together through `gridlet serve`: the requests reaching a local sink, the
//! key-value counters, retry on 5xx.

mod common;

use common::{Recorder, root};
use gridlet::journal::SqliteJournal;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

/// The compile cache the tests share (kept across runs in the target folder:
/// Python and JavaScript take seconds to compile).
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled")
}

fn plugin(name: &str) -> PathBuf {
    let path = root().join("target/plugins").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{name} is not built: run `cargo xtask plugins`"
    );
    path
}

/// Every sample delivery, both schemas (the validation handshake aside).
fn samples() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for schema in ["eventgrid", "cloudevents"] {
        for entry in std::fs::read_dir(root().join("examples/events").join(schema)).expect("dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|x| x == "json")
                && !path.ends_with("subscription-validation.json")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 9, "{files:?}");
    files
}

fn sample(file: &str) -> PathBuf {
    root().join("examples/events/eventgrid").join(file)
}

/// The environment the demo's configuration (examples/demo.toml) reads,
/// pointed at `sink`.
fn env(sink: &Recorder) -> Vec<(&'static str, String)> {
    vec![
        ("RETRAIN_PIPELINE_URL", sink.url("/retrain")),
        ("RETRAIN_PIPELINE_HOST", sink.host()),
        ("CHAT_WEBHOOK_URL", sink.url("/chat")),
        ("CHAT_WEBHOOK_HOST", sink.host()),
        ("DEPLOY_URL", sink.url("/deploy")),
        ("DEPLOY_HOST", sink.host()),
    ]
}

/// What `gridlet run` grants: the sink as every example's endpoint.
fn grants(sink: &Recorder) -> Vec<String> {
    let mut flags = Vec::new();
    for (key, path) in [("pipeline_url", "/retrain"), ("chat_webhook_url", "/chat")] {
        flags.push("--config".to_string());
        flags.push(format!("{key}={}", sink.url(path)));
    }
    flags.extend([
        "--allow-host".to_string(),
        sink.host(),
        "--allow-private-network".to_string(),
        "127.0.0.1/32".to_string(),
    ]);
    flags
}

/// One compile per plugin for the whole test binary: the first caller fills
/// the shared cache while the others wait (2 cores: no parallel compiles).
async fn warm(name: &str) {
    static WARMED: tokio::sync::Mutex<Vec<String>> = tokio::sync::Mutex::const_new(Vec::new());
    let mut warmed = WARMED.lock().await;
    if !warmed.iter().any(|w| w == name) {
        let sink = Recorder::start().await;
        run(
            name,
            &sample("run-completed.json"),
            &sink,
            &["--ignore-filter"],
        )
        .await;
        warmed.push(name.to_string());
    }
}

/// `gridlet run <plugin> <events> <extra>` with the example manifest; exit
/// code and stdout.
async fn run(name: &str, events: &Path, sink: &Recorder, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gridlet"))
        .arg("run")
        .arg(plugin(name))
        .arg(events)
        .arg("--cache-dir")
        .arg(cache_dir())
        .args(grants(sink))
        .args(extra)
        .output()
        .await
        .expect("gridlet run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

fn posts(sink: &Recorder, path: &str) -> Vec<Value> {
    sink.received()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.json())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drift_guard_requests_retraining_above_the_threshold() {
    warm("drift-guard").await;
    let sink = Recorder::start().await;
    let drift = sample("dataset-drift-detected.json");
    let (code, out) = run("drift-guard", &drift, &sink, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("= handled"), "{out}");
    assert!(out.contains("retraining requested"), "{out}");
    let requests = posts(&sink, "/retrain");
    assert_eq!(requests.len(), 1, "{out}");
    let r = &requests[0];
    assert_eq!(r["reason"], "data-drift");
    assert_eq!(r["dataDriftName"], "tx-features-weekly");
    assert_eq!(r["driftCoefficient"], 0.6125);
    assert_eq!(r["threshold"], 0.3);
    assert_eq!(
        r["datasets"]["base"],
        "11111111-2222-4333-8444-555555555555"
    );
    assert_eq!(
        r["datasets"]["target"],
        "66666666-7777-4888-8999-aaaaaaaaaaaa"
    );
    assert_eq!(r["window"]["start"], "2026-11-20T00:00:00+00:00");
    assert_eq!(r["window"]["end"], "2026-11-27T00:00:00+00:00");

    // Below the threshold: a log line, no request.
    let (code, out) = run("drift-guard", &drift, &sink, &["--config", "threshold=0.9"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("drift 0.613 <= 0.9; no retraining"), "{out}");
    assert_eq!(posts(&sink, "/retrain").len(), 1, "no second request");

    // The pipeline failing: 5xx → retry, 4xx → reject (exit 1).
    sink.answer(503);
    let (code, out) = run("drift-guard", &drift, &sink, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("= retry: pipeline answered 503"), "{out}");
    sink.answer(400);
    let (code, out) = run("drift-guard", &drift, &sink, &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("= reject: pipeline refused the request: 400"),
        "{out}"
    );
}

/// The documented Python client sends the request before writing its
/// body: the host holds only a few writes of a body that is not on its way,
/// and writing 20 KiB first waited until the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drift_guard_sends_a_body_larger_than_the_host_buffers_unsent() {
    warm("drift-guard").await;
    let sink = Recorder::start().await;
    let mut drift: Value = serde_json::from_slice(
        &std::fs::read(sample("dataset-drift-detected.json")).expect("read"),
    )
    .expect("json");
    let name = "n".repeat(20_000);
    drift[0]["data"]["dataDriftName"] = Value::from(name.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("large-drift.json");
    std::fs::write(&file, drift.to_string()).expect("write");
    let (code, out) = run("drift-guard", &file, &sink, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("= handled"), "{out}");
    let requests = posts(&sink, "/retrain");
    assert_eq!(requests.len(), 1, "{out}");
    assert_eq!(requests[0]["dataDriftName"], Value::from(name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_deployment_notifier_posts_a_chat_message() {
    warm("deployment-notifier").await;
    let sink = Recorder::start().await;
    let deployed = sample("model-deployed.json");
    let (code, out) = run("deployment-notifier", &deployed, &sink, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("= handled"), "{out}");
    let messages = posts(&sink, "/chat");
    assert_eq!(messages.len(), 1, "{out}");
    let text = messages[0]["text"].as_str().expect("text");
    for part in [
        "fraud-scoring-aks",
        "fraud-detection",
        "AKS",
        "fraud-gbm:7",
        "fraud-featurizer:3",
    ] {
        assert!(text.contains(part), "`{part}` in {text}");
    }

    sink.answer(502);
    let (code, out) = run("deployment-notifier", &deployed, &sink, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("= retry: chat service answered 502"), "{out}");
    sink.answer(404);
    let (code, out) = run("deployment-notifier", &deployed, &sink, &[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("= reject: chat service refused the message: 404"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c_audit_counter_counts_per_type_and_workspace() {
    warm("audit-counter").await;
    let sink = Recorder::start().await;
    let (code, out) = run("audit-counter", &sample("batch-mixed.json"), &sink, &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("4 event(s): 4 handled"), "{out}");
    for line in [
        "kv    default/type:ModelRegistered  increment by 1 → 1",
        "kv    default/type:ModelArchived  increment by 1 → 1",
        "kv    default/workspace:fraud-detection  increment by 1 → 4",
        "[audit] 2026-11-28T05:01:00Z RunCompleted id=1b2c3d4e-5f60-4172-8384-a5b6c7d8e9f0 workspace=fraud-detection",
    ] {
        assert!(out.contains(line), "`{line}` in {out}");
    }
    assert!(sink.received().is_empty(), "it calls nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_plugin_handles_every_sample_event() {
    for name in ["drift-guard", "deployment-notifier", "audit-counter"] {
        warm(name).await;
    }
    let sink = Recorder::start().await;
    for file in samples() {
        let mut events = 0;
        for name in ["drift-guard", "deployment-notifier", "audit-counter"] {
            // Past the filters too: each plugin must cope with any event.
            let (code, out) = run(name, &file, &sink, &["--ignore-filter"]).await;
            assert_eq!(code, 0, "{name} on {}: {out}", file.display());
            let summary = out.lines().last().unwrap_or("");
            let n: usize = summary
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(
                n > 0 && summary.ends_with(&format!("{n} handled")),
                "{name}: {summary}"
            );
            events = n;
        }
        assert!(events > 0);
    }
    // Only drift above the threshold and deployments call out: three drift
    // events (dataset-drift-detected, batch-mixed, demo) and three
    // deployments (model-deployed, demo, the CloudEvents batch).
    assert_eq!(posts(&sink, "/retrain").len(), 3);
    assert_eq!(posts(&sink, "/chat").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_three_through_gridlet_serve_with_retry_on_5xx() {
    for name in ["drift-guard", "deployment-notifier", "audit-counter"] {
        warm(name).await;
    }
    let sink = Recorder::start().await;
    sink.answer(503);
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins");
    for name in ["drift-guard", "deployment-notifier", "audit-counter"] {
        for ext in ["wasm", "toml"] {
            let file = format!("{name}.{ext}");
            std::fs::copy(
                root().join("target/plugins").join(&file),
                plugins.join(&file),
            )
            .expect("copy");
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_gridlet"))
        .arg("serve")
        .env("GRIDLET_LISTEN", format!("127.0.0.1:{port}"))
        .env("GRIDLET_PLUGINS_DIR", &plugins)
        .env("GRIDLET_STATE_DIR", dir.path().join("state"))
        .env("GRIDLET_COMPILE_CACHE_DIR", cache_dir())
        .env("GRIDLET_RETRY_DELAYS_MS", "100")
        .env("GRIDLET_ADMIN_TOKEN", "t")
        // The demo's grants; the environment above overrides its paths.
        .env("GRIDLET_CONFIG", root().join("examples/demo.toml"))
        .envs(env(&sink))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let client = reqwest::Client::new();
    let status = |name: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            client
                .get(format!("{base}/admin/plugins/{name}"))
                .bearer_auth("t")
                .send()
                .await
                .ok()?
                .json::<Value>()
                .await
                .ok()
        }
    };
    // The examples compile on a first run (a shared cache after it).
    common::process::plugins_loaded(&base).await;
    for name in ["drift-guard", "deployment-notifier", "audit-counter"] {
        let s = status(name).await.expect("status");
        assert_eq!(s["state"], "serving", "{s}");
    }

    for file in [
        "dataset-drift-detected.json",
        "model-deployed.json",
        "run-completed.json",
    ] {
        let response = client
            .post(format!("{base}/api/events"))
            .body(std::fs::read(sample(file)).expect("sample"))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 200, "{file}");
    }
    // The services are down: both callers retry.
    for name in ["drift-guard", "deployment-notifier"] {
        let started = Instant::now();
        while status(name).await.expect("status")["counters"]["retried"] == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{name} never retried"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    sink.answer(200);
    for name in ["drift-guard", "deployment-notifier", "audit-counter"] {
        let want = if name == "audit-counter" { 3 } else { 1 };
        let started = Instant::now();
        loop {
            let s = status(name).await.expect("status");
            if s["counters"]["delivered"] == want {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{name}: {s}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let retrain = posts(&sink, "/retrain");
    assert!(
        retrain.len() >= 2,
        "a refused attempt, then the one that worked"
    );
    assert!(
        retrain
            .iter()
            .all(|r| r["dataDriftName"] == "tx-features-weekly")
    );
    let chat = posts(&sink, "/chat");
    assert!(chat.len() >= 2);
    assert!(
        chat.iter()
            .all(|c| c["text"].as_str().unwrap_or("").contains("fraud-gbm:7"))
    );

    // The counters are in the journal, the plugin's own namespace.
    server.start_kill().expect("kill");
    let _ = server.wait().await;
    let journal = SqliteJournal::open(&dir.path().join("state"), false).expect("journal");
    let counter = |key: &str| {
        journal
            .kv_get("audit-counter", "default", key)
            .expect("kv")
            .map(|v| u64::from_le_bytes(v.try_into().expect("8 bytes")))
    };
    assert_eq!(counter("type:DatasetDriftDetected"), Some(1));
    assert_eq!(counter("type:ModelDeployed"), Some(1));
    assert_eq!(counter("type:RunCompleted"), Some(1));
    assert_eq!(counter("workspace:fraud-detection"), Some(3));
}

/// An outbound call that fails before any response — a host not granted,
/// an address not granted, a refused connection — reaches the plugin as an
/// error it can catch, every time: the JavaScript (`try { await fetch() }`)
/// and Python examples answer `retry`, never a trap, in each of many runs
/// (a guest's body write used to race the refusal: see
/// `runtime/http/unsent.rs`). The C example makes no outbound calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_call_that_fails_is_an_error_the_plugin_catches_every_time() {
    const RUNS: usize = 20;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("http://127.0.0.1:{closed}/hook");
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, sample_file, key, expected) in [
        (
            "deployment-notifier",
            "model-deployed.json",
            "chat_webhook_url",
            "= retry: chat service unreachable: TypeError: NetworkError",
        ),
        (
            "drift-guard",
            "dataset-drift-detected.json",
            "pipeline_url",
            "= retry: ",
        ),
    ] {
        warm(name).await;
        // RUNS copies of the sample, each its own delivery on a fresh instance.
        let one: Vec<Value> =
            serde_json::from_slice(&std::fs::read(sample(sample_file)).expect("sample"))
                .expect("json");
        let many: Vec<Value> = (0..RUNS)
            .map(|i| {
                let mut e = one[0].clone();
                e["id"] = format!("run-{i}").into();
                e
            })
            .collect();
        let events = dir.path().join(format!("{name}.json"));
        std::fs::write(&events, serde_json::to_vec(&many).expect("json")).expect("events");
        let config = format!("{key}={url}");
        let scenarios: [(&str, Vec<&str>); 3] = [
            ("host not granted", vec![]),
            ("address not granted", vec!["--allow-host", "127.0.0.1"]),
            (
                "connection refused",
                vec![
                    "--allow-host",
                    "127.0.0.1",
                    "--allow-private-network",
                    "127.0.0.1/32",
                ],
            ),
        ];
        for (scenario, flags) in scenarios {
            let out = Command::new(env!("CARGO_BIN_EXE_gridlet"))
                .arg("run")
                .arg(plugin(name))
                .arg(&events)
                .arg("--cache-dir")
                .arg(cache_dir())
                .args(["--config", &config])
                .args(&flags)
                .output()
                .await
                .expect("gridlet run");
            let text = String::from_utf8_lossy(&out.stdout);
            let outcomes: Vec<&str> = text
                .lines()
                .map(str::trim_start)
                .filter(|l| l.starts_with("= "))
                .collect();
            assert_eq!(outcomes.len(), RUNS, "{name}, {scenario}: {text}");
            for outcome in outcomes {
                assert!(
                    outcome.starts_with(expected),
                    "{name}, {scenario}: `{outcome}`"
                );
            }
        }
    }
}
