//! Operations through the `gridlet` binary: Prometheus metrics across a
//! scripted run (success, retry, dead letter, replay, reload, rejected
//! version), the admin API against its OpenAPI document, readiness (journal
//! locked, shutting down), and JSON logs carrying plugin, version, event id
//! and attempt.

mod common;

use common::{Recorder, echo_grant, install, plugin_path};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

const TOKEN: &str = "ops-admin-token";

struct Host {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Host {
    /// `gridlet serve` over `dir`, with JSON logs piped when `logs`; its
    /// plugins loaded.
    async fn start(dir: &Path, extra: &[(&str, &str)], logs: bool) -> Self {
        let host = Self::spawn(dir, extra, logs);
        common::process::plugins_loaded(&host.base).await;
        host
    }

    /// `gridlet serve` over `dir`, just started.
    fn spawn(dir: &Path, extra: &[(&str, &str)], logs: bool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_gridlet"));
        command
            .args(["serve", "--log-format", "json"])
            .env("GRIDLET_LISTEN", format!("127.0.0.1:{port}"))
            .env("GRIDLET_PLUGINS_DIR", dir.join("plugins"))
            .env("GRIDLET_STATE_DIR", dir.join("state"))
            .env("GRIDLET_ADMIN_TOKEN", TOKEN)
            .env("GRIDLET_RETRY_DELAYS_MS", "50")
            .env("GRIDLET_JOURNAL_FSYNC", "false")
            .env("GRIDLET_CONFIG", dir.join("gridlet.toml"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(if logs { Stdio::piped() } else { Stdio::null() })
            .kill_on_drop(true);
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command.spawn().expect("serve");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn admin(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, body: Value) -> u16 {
        self.client
            .post(self.url("/api/events"))
            .json(&body)
            .send()
            .await
            .expect("post")
            .status()
            .as_u16()
    }

    async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }
}

fn event(id: &str) -> Value {
    json!([{
        "id": id,
        "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w",
        "subject": "models/m:1",
        "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
        "eventTime": "2026-11-28T00:00:00Z",
        "data": {"modelName": "m", "modelVersion": "1"}
    }])
}

/// The value of the sample of `family` whose labels include all of `labels`.
fn sample(text: &str, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            name == family
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The host answers while its start-up scan compiles: `/healthz` at once,
/// `/readyz` 503 saying `loading`, and an event sent meanwhile is kept for
/// every plugin found (declared from its manifest, `waiting`) and delivered
/// once it loads, on its first attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_while_the_plugins_compile_is_delivered_once_they_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Recorder::start().await;
    // Scanned in name order: the Python example first, compiled from
    // nothing (this state folder has no compile cache) for seconds; echo
    // after it.
    install(dir.path(), "a-python", "drift-guard", "", "");
    install(dir.path(), "echo", "echo", "", &echo_grant(&sink, "echo"));
    let host = Host::spawn(dir.path(), &[], false);
    let started = Instant::now();
    while host.client.get(host.url("/healthz")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "no server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, ready) = host.admin("/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(ready["checks"]["plugins"]["loading"], true, "{ready}");
    let (_, echo) = host.admin("/admin/plugins/echo").await;
    assert_eq!(echo["state"], "waiting", "{echo}");
    let answer: Value = host
        .client
        .post(host.url("/api/events"))
        .json(&event("while-loading"))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    // Kept for both plugins found (neither manifest filters).
    assert_eq!(answer["deliveries"], 2, "{answer}");
    let started = Instant::now();
    let delivered = loop {
        let got = sink
            .received()
            .into_iter()
            .find(|r| r.json()["id"] == "while-loading");
        if let Some(got) = got {
            break got.json();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not delivered after the plugins loaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        delivered["attempt"], 1,
        "waiting is not an attempt: {delivered}"
    );
    common::process::plugins_loaded(&host.base).await;
    let (code, ready) = host.admin("/readyz").await;
    assert_eq!(code, 200, "{ready}");
    let (_, python) = host.admin("/admin/plugins/a-python").await;
    assert_eq!(python["state"], "serving", "{python}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_scripted_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Recorder::start().await;
    install(dir.path(), "echo", "echo", "", &echo_grant(&sink, "echo"));
    install(
        dir.path(),
        "hostile",
        "hostile",
        "[retry]\nmaxDeliveryAttempts = 1\n",
        "config = { behaviour = \"trap\" }",
    );
    let host = Host::start(dir.path(), &[], false).await;
    let m = host.metrics().await;
    assert!(
        m.contains("# TYPE gridlet_plugin_reloads_total counter"),
        "{m}"
    );
    assert_eq!(sample(&m, "gridlet_plugins_serving", &[]), Some(2.0));

    // The sink is down: echo's first attempt fails and is retried; then it works.
    sink.answer(503);
    assert_eq!(host.post(event("e1")).await, 200);
    wait_for("a retry", async || {
        let m = host.metrics().await;
        sample(
            &m,
            "gridlet_delivery_attempt_fail_total",
            &[("plugin", "echo"), ("outcome", "retry")],
        )
        .is_some()
    })
    .await;
    sink.answer(200);
    wait_for("echo's success", async || {
        let m = host.metrics().await;
        sample(&m, "gridlet_delivery_success_total", &[("plugin", "echo")]) == Some(1.0)
    })
    .await;
    // hostile trapped once, with one attempt allowed: dead-lettered.
    wait_for("the dead letter", async || {
        let m = host.metrics().await;
        sample(
            &m,
            "gridlet_dead_lettered_total",
            &[
                ("plugin", "hostile"),
                ("reason", "MaxDeliveryAttemptsExceeded"),
            ],
        ) == Some(1.0)
    })
    .await;
    let m = host.metrics().await;
    let labels = [("event_type", "ModelRegistered")];
    assert_eq!(
        sample(&m, "gridlet_events_received_total", &labels),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "gridlet_delivery_attempt_fail_total",
            &[
                ("plugin", "hostile"),
                ("outcome", "trap"),
                ("event_type", "ModelRegistered")
            ]
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        sample(
            &m,
            "gridlet_destination_processing_duration_ms_count",
            &[("plugin", "echo")]
        ) >= Some(2.0),
        "{m}"
    );
    assert!(
        m.contains("gridlet_delivery_latency_seconds_bucket{plugin=\"echo\",le=\"0.5\"}"),
        "{m}"
    );
    assert_eq!(
        sample(&m, "gridlet_deliveries_pending", &[]),
        Some(0.0),
        "{m}"
    );

    // A malformed request, a duplicate, a replay.
    let malformed = host
        .client
        .post(host.url("/api/events"))
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(malformed.status(), 400);
    assert_eq!(host.post(event("e1")).await, 200);
    let replayed = host
        .client
        .post(host.url("/admin/dead-letters/replay"))
        .bearer_auth(TOKEN)
        .json(&json!({"all": true}))
        .send()
        .await
        .expect("replay");
    assert_eq!(replayed.status(), 200);
    wait_for("the replay's second dead letter", async || {
        let m = host.metrics().await;
        sample(&m, "gridlet_dead_lettered_total", &[("plugin", "hostile")]) == Some(2.0)
    })
    .await;
    let m = host.metrics().await;
    assert_eq!(
        sample(
            &m,
            "gridlet_requests_rejected_total",
            &[("reason", "malformed")]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "gridlet_events_duplicate_total", &[]),
        Some(1.0),
        "{m}"
    );
    assert_eq!(sample(&m, "gridlet_replayed_total", &[]), Some(1.0), "{m}");

    // A reload and a rejected version.
    let plugins = dir.path().join("plugins");
    let tmp = plugins.join(".echo.partial");
    std::fs::copy(plugin_path("echo-v2"), &tmp).expect("copy");
    std::fs::rename(&tmp, plugins.join("echo.wasm")).expect("rename");
    std::fs::write(plugins.join("broken.wasm"), b"not a component").expect("write");
    wait_for("the reload and the rejection", async || {
        let m = host.metrics().await;
        sample(&m, "gridlet_plugin_reloads_total", &[("plugin", "echo")]) == Some(2.0)
            && sample(
                &m,
                "gridlet_plugin_rejected_versions_total",
                &[("plugin", "broken")],
            ) == Some(1.0)
    })
    .await;
}

/// The OpenAPI document's schema for `name`, resolvable on its own.
fn schema(doc: &Value, name: &str) -> jsonschema::Validator {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"],
    });
    jsonschema::validator_for(&schema).expect("a valid schema")
}

fn check(doc: &Value, name: &str, body: &Value) {
    let validator = schema(doc, name);
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\n{body:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_matches_its_openapi_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Recorder::start().await;
    install(dir.path(), "echo", "echo", "", &echo_grant(&sink, "echo"));
    install(
        dir.path(),
        "hostile",
        "hostile",
        "[retry]\nmaxDeliveryAttempts = 1\n",
        "config = { behaviour = \"trap\" }",
    );
    std::fs::write(dir.path().join("plugins/broken.wasm"), b"garbage").expect("write");
    let host = Host::start(dir.path(), &[], false).await;
    sink.answer(503); // echo keeps retrying: deliveries stay pending
    assert_eq!(host.post(event("a1")).await, 200);
    wait_for("a dead letter", async || {
        host.admin("/admin/dead-letters").await.1["deadLetters"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    })
    .await;

    // The document is served as committed, without a token.
    let served: Value = host
        .client
        .get(host.url("/admin/openapi.json"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("docs/openapi.json")).expect("doc"),
    )
    .expect("json");
    assert_eq!(served, committed);
    let doc = committed;

    // Every documented GET and POST: 401 without the token.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if path == "/admin/openapi.json" {
            continue;
        }
        let concrete = path.replace("{name}", "echo").replace("{id}", "1");
        for method in item.as_object().expect("item").keys() {
            let request = match method.as_str() {
                "get" => host.client.get(host.url(&concrete)),
                "put" => host
                    .client
                    .put(host.url(&concrete))
                    .json(&json!({"wasm": ""})),
                "delete" => host.client.delete(host.url(&concrete)),
                _ => host
                    .client
                    .post(host.url(&concrete))
                    .json(&json!({"all": true})),
            };
            let response = request.send().await.expect("send");
            assert_eq!(response.status(), 401, "{method} {path}");
            let body: Value = response.json().await.expect("problem");
            check(&doc, "Problem", &body);
        }
    }

    let (code, overview) = host.admin("/admin/overview").await;
    assert_eq!(code, 200);
    check(&doc, "Overview", &overview);
    assert_eq!(overview["events"]["received"], 1, "{overview}");
    assert_eq!(overview["journal"]["state"], "writable");
    let (code, sources) = host.admin("/admin/sources").await;
    assert_eq!(code, 200);
    check(&doc, "Sources", &sources);

    let (code, plugins) = host.admin("/admin/plugins").await;
    assert_eq!(code, 200);
    check(&doc, "PluginList", &plugins);
    let states: Vec<&str> = plugins["plugins"]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        states,
        ["rejected", "serving", "serving"],
        "broken, echo, hostile"
    );
    let (_, one) = host.admin("/admin/plugins/echo").await;
    check(&doc, "Plugin", &one);
    let (_, invocations) = host.admin("/admin/plugins/hostile/invocations").await;
    check(&doc, "Invocations", &invocations);
    assert_eq!(
        invocations["invocations"][0]["outcome"], "trap",
        "{invocations}"
    );
    assert_eq!(invocations["invocations"][0]["eventId"], "a1");
    let (code, missing) = host.admin("/admin/plugins/nope/invocations").await;
    assert_eq!(code, 404);
    check(&doc, "Problem", &missing);

    let (_, deliveries) = host.admin("/admin/deliveries").await;
    check(&doc, "Deliveries", &deliveries);
    let echo = &deliveries["counts"]["echo"];
    assert_eq!(
        echo["pending"].as_u64().unwrap_or(0) + echo["retrying"].as_u64().unwrap_or(0),
        1,
        "{deliveries}"
    );
    assert_eq!(deliveries["deliveries"][0]["plugin"], "echo");
    let (code, bad) = host.admin("/admin/deliveries?state=lost").await;
    assert_eq!(code, 400);
    check(&doc, "Problem", &bad);

    // One host, not a cluster: nothing to push to, and it says so.
    let (code, single) = host.admin("/admin/cluster/plugins").await;
    assert_eq!(code, 409);
    check(&doc, "Problem", &single);
    assert_eq!(single["type"], "not-cluster-mode");

    let (_, letters) = host.admin("/admin/dead-letters").await;
    check(&doc, "DeadLetterList", &letters);
    let id = letters["deadLetters"][0]["id"].as_i64().expect("id");
    let (_, letter) = host.admin(&format!("/admin/dead-letters/{id}")).await;
    check(&doc, "DeadLetterWithEvent", &letter);
    for (path, name) in [("replay", "Replayed"), ("purge", "Purged")] {
        let body: Value = host
            .client
            .post(host.url(&format!("/admin/dead-letters/{path}")))
            .bearer_auth(TOKEN)
            .json(&json!({"ids": [id]}))
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        check(&doc, name, &body);
    }

    // The live tail: an event accepted while watching arrives as an
    // `event` message holding a LiveEvent.
    let mut live = host
        .client
        .get(host.url("/admin/events/live"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("live");
    assert_eq!(live.status(), 200);
    assert_eq!(
        live.headers()["content-type"].to_str().expect("type"),
        "text/event-stream"
    );
    assert_eq!(host.post(event("live-1")).await, 200);
    let mut text = String::new();
    while !text.contains("\n\n") || !text.contains("live-1") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), live.chunk())
            .await
            .expect("an event in time")
            .expect("chunk")
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = text
        .lines()
        .skip_while(|l| *l != "event: event")
        .find_map(|l| l.strip_prefix("data: "))
        .expect("data line");
    let tail: Value = serde_json::from_str(data).expect("json");
    check(&doc, "LiveEvent", &tail);
    assert_eq!(tail["id"], "live-1");
    drop(live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_flips_when_the_journal_is_locked_and_during_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Recorder::start().await;
    install(dir.path(), "echo", "echo", "", &echo_grant(&sink, "echo"));
    let mut host = Host::start(dir.path(), &[("GRIDLET_SHUTDOWN_DELAY_MS", "1500")], false).await;
    let ready = async |host: &Host| {
        let r = host
            .client
            .get(host.url("/readyz"))
            .send()
            .await
            .expect("readyz");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    };
    // Not ready until the first probe commits (a moment after start).
    wait_for("ready", async || ready(&host).await.0 == 200).await;
    let (code, body) = ready(&host).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["checks"]["journal"], "writable");
    assert_eq!(body["checks"]["plugins"]["serving"], 1);

    // Another process holds the database's write lock: not ready.
    // Readiness answers from the last probe (one a second), so it notices
    // within a few seconds, and says which check failed, not why.
    let lock = rusqlite::Connection::open(dir.path().join("state/journal.sqlite3")).expect("open");
    lock.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    wait_for("not ready", async || ready(&host).await.0 == 503).await;
    let (code, body) = ready(&host).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["checks"]["journal"], "not writable", "{body}");
    assert_eq!(body["checks"]["auth"], "OFF (loopback only)", "{body}");
    lock.execute_batch("ROLLBACK").expect("unlock");
    wait_for("ready again", async || ready(&host).await.0 == 200).await;

    // SIGTERM: not ready at once, still accepting through the delay.
    let pid = host.child.id().expect("pid");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, body) = ready(&host).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["checks"]["shutdown"], "in progress");
    assert_eq!(
        host.post(event("late")).await,
        200,
        "still accepting during the delay"
    );
    let status = tokio::time::timeout(Duration::from_secs(20), host.child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_plugin_version_event_and_attempt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Recorder::start().await;
    sink.answer(503);
    install(dir.path(), "echo", "echo", "", &echo_grant(&sink, "echo"));
    let mut host = Host::start(dir.path(), &[], true).await;
    assert_eq!(host.post(event("logged")).await, 200);
    let stderr = host.child.stderr.take().expect("stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let hash =
        gridlet::plugin::cache::content_hash(&std::fs::read(plugin_path("echo")).expect("echo"));
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let entry: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if entry["message"] == "outbound request" {
                return entry;
            }
        }
        Value::Null
    })
    .await
    .expect("an outbound request line");
    assert_eq!(found["plugin"], "echo", "{found}");
    assert_eq!(found["version"], &hash[..12], "{found}");
    assert_eq!(found["event_id"], "logged", "{found}");
    assert_eq!(found["attempt"], 1, "{found}");
    assert_eq!(found["status"], 503, "{found}");
    assert_eq!(
        found["url"], "<config:sink_url>",
        "config values never appear: {found}"
    );
}
