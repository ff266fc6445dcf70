//! Hot reload through a running server: swaps under load, a long delivery
//! finishing on the version it started on, broken replacements that never
//! replace a working version, unloading, the compile cache, manifest-only
//! changes, half-written files, and the status in the admin API and CLI.

mod common;

use common::{Recorder, grant, plugin_path};
use gridlet::dispatch::Targets;
use gridlet::journal::JournalSettings;
use gridlet::plugin::OperatorGrants;
use gridlet::plugin::cache::content_hash;
use gridlet::serve::{self, ServeSettings, Server};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "reload-admin-token";

struct Host {
    server: Server,
    sink: Recorder,
    dir: PathBuf,
    client: reqwest::Client,
    _temp: Option<tempfile::TempDir>,
}

impl Host {
    /// A server over a fresh folder with `echo` (version 1) installed.
    async fn start() -> Self {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().to_path_buf();
        let sink = Recorder::start().await;
        std::fs::create_dir_all(dir.join("plugins")).expect("plugins dir");
        std::fs::write(dir.join("plugins/echo.toml"), manifest(&sink, "")).expect("manifest");
        place(
            &dir,
            "echo",
            &std::fs::read(plugin_path("echo")).expect("echo"),
        );
        let mut host = Self::on(&dir, sink).await;
        host._temp = Some(temp);
        host
    }

    /// A server over `dir` (plugins in `dir/plugins`, state in `dir/state`).
    async fn on(dir: &Path, sink: Recorder) -> Self {
        let mut settings = ServeSettings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            plugins_dir: dir.join("plugins"),
            state_dir: dir.join("state"),
            journal: JournalSettings {
                durable: false,
                ..JournalSettings::default()
            },
            admin_token: Some(TOKEN.into()),
            // The default grant, not a named one: a plugin the operator
            // does not name is unloaded with its file (named ones wait).
            grants: OperatorGrants::new(
                grant(
                    &[("name", "echo"), ("sink_url", &sink.url("/echo"))],
                    &[&sink.host()],
                ),
                Default::default(),
            ),
            ..ServeSettings::default()
        };
        settings.dispatch.retry_delays = vec![Duration::from_millis(50)];
        let server = serve::start(settings).await.expect("server starts");
        Self {
            server,
            sink,
            dir: dir.to_path_buf(),
            client: reqwest::Client::new(),
            _temp: None,
        }
    }

    /// POST events with these ids (and subjects); expect 200.
    async fn post(&self, events: &[(String, &str)]) {
        let body: Vec<Value> = events
            .iter()
            .map(|(id, subject)| {
                json!({
                    "id": id,
                    "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w",
                    "subject": subject,
                    "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
                    "eventTime": "2026-11-28T00:00:00Z",
                    "data": {"modelName": "m", "modelVersion": "1"}
                })
            })
            .collect();
        let status = self
            .client
            .post(format!("http://{}/api/events", self.server.addr))
            .json(&body)
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status, 200);
    }

    async fn post_one(&self, id: &str) {
        self.post(&[(id.to_string(), "models/m:1")]).await;
    }

    /// The build (`echo` or `echo-v2`) of every POST the sink got for `id`.
    fn builds(&self, id: &str) -> Vec<String> {
        self.sink
            .received()
            .iter()
            .map(|r| r.json())
            .filter(|j| j["id"] == id)
            .map(|j| j["build"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Wait for `id`'s delivery; the build that handled it.
    async fn handled_by(&self, id: &str) -> String {
        wait(&format!("delivery of {id}"), || !self.builds(id).is_empty()).await;
        self.builds(id).remove(0)
    }

    /// `GET /admin/plugins/<name>` with the token.
    async fn status(&self, name: &str) -> Value {
        self.client
            .get(format!("http://{}/admin/plugins/{name}", self.server.addr))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json")
    }

    fn serving_hash(&self, name: &str) -> Option<String> {
        self.server.plugins.serving(name).map(|s| s.hash)
    }

    /// Put `bytes` in place as `<name>.wasm` (write, then rename) and wait
    /// until that version serves.
    async fn swap(&self, name: &str, bytes: &[u8]) {
        place(&self.dir, name, bytes);
        let hash = content_hash(bytes);
        wait(&format!("{name} to serve {}", &hash[..12]), || {
            self.serving_hash(name).as_deref() == Some(hash.as_str())
        })
        .await;
    }

    /// Put `bytes` in place and wait until they are rejected; the status.
    async fn rejected(&self, name: &str, bytes: &[u8]) -> Value {
        place(&self.dir, name, bytes);
        let hash = content_hash(bytes);
        let mut status = Value::Null;
        let started = Instant::now();
        while status["rejected"]["hash"] != hash.as_str() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "not rejected: {status}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
            status = self.status(name).await;
        }
        status
    }
}

/// The manifest of an echo plugin, with `extra` appended (what it posts
/// to is the operator's grant: [`Host::on`]).
fn manifest(_sink: &Recorder, extra: &str) -> String {
    format!("[limits]\nmax_concurrency = 8\n[config]\nname = {{ required = true }}\n{extra}")
}

/// Write `bytes` to a temporary name in the folder, then rename it to
/// `<name>.wasm`: how a deploy should put a plugin in place.
fn place(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!("plugins/.{name}.wasm.partial"));
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, dir.join(format!("plugins/{name}.wasm"))).expect("rename");
}

async fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(plugin_path(name)).expect("fixture")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_swaps_under_load_lose_nothing_and_the_new_version_takes_over() {
    let host = Arc::new(Host::start().await);
    let (v1, v2) = (fixture("echo"), fixture("echo-v2"));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let load = {
        let (host, stop, sent) = (host.clone(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                // Steady load, not a growing backlog: a debug build on one
                // guest thread delivers fewer than this loop could send,
                // and markers would wait behind the backlog.
                let finished = host.server.dispatcher.stats().finished() as usize;
                if sent.load(Ordering::SeqCst) > finished + 256 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                let n = sent.fetch_add(4, Ordering::SeqCst);
                let batch: Vec<(String, &str)> = (n..n + 4)
                    .map(|i| (format!("load-{i}"), "models/m:1"))
                    .collect();
                host.post(&batch).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    for swap in 0..100 {
        let (bytes, build) = if swap % 2 == 0 {
            (&v2, "echo-v2")
        } else {
            (&v1, "echo")
        };
        host.swap("echo", bytes).await;
        let marker = format!("marker-{swap}");
        host.post_one(&marker).await;
        assert_eq!(host.handled_by(&marker).await, build, "after swap {swap}");
    }
    stop.store(true, Ordering::SeqCst);
    load.await.expect("load generator");
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent >= 400, "the load ran throughout ({sent} events)");
    wait("every load event delivered", || {
        host.server.dispatcher.stats().finished() as usize >= sent + 100
    })
    .await;
    let mut per_id: HashMap<String, Vec<String>> = HashMap::new();
    for r in host.sink.received() {
        let j = r.json();
        per_id
            .entry(j["id"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(j["build"].as_str().unwrap_or("").to_string());
    }
    for i in 0..sent {
        let builds = per_id
            .get(&format!("load-{i}"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            builds.len(),
            1,
            "load-{i} handled exactly once, by one version: {builds:?}"
        );
    }
    let stats = host.server.dispatcher.stats();
    assert_eq!(stats.retry.load(Ordering::SeqCst), 0, "no attempt failed");
    assert_eq!(
        stats.dead.load(Ordering::SeqCst),
        0,
        "nothing dead-lettered"
    );
    // Replaced versions are freed once their deliveries end: one remains.
    let runtime_versions = || host.server.plugins.runtime().versions_alive();
    wait("replaced versions freed", || runtime_versions() == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_delivery_finishes_on_the_version_it_started_on() {
    let host = Host::start().await;
    host.post(&[("slow".into(), "models/m:1/sleep-1500")]).await;
    wait("the slow delivery to start", || {
        host.server
            .dispatcher
            .stats()
            .deliveries
            .load(Ordering::SeqCst)
            == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    host.swap("echo", &fixture("echo-v2")).await;
    for i in 0..3 {
        let id = format!("fast-{i}");
        host.post_one(&id).await;
        assert_eq!(
            host.handled_by(&id).await,
            "echo-v2",
            "new events go to version 2"
        );
    }
    assert!(
        host.builds("slow").is_empty(),
        "the slow delivery is still running"
    );
    assert_eq!(
        host.server.plugins.runtime().versions_alive(),
        2,
        "version 1 is still alive"
    );
    assert_eq!(
        host.handled_by("slow").await,
        "echo",
        "it finished on version 1"
    );
    wait("version 1 freed", || {
        host.server.plugins.runtime().versions_alive() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_replacements_keep_the_old_version_serving_until_fixed() {
    let host = Host::start().await;
    let v1_hash = content_hash(&fixture("echo"));
    let v2 = fixture("echo-v2");
    let broken: [(&str, Vec<u8>, &[&str]); 4] = [
        (
            "garbage",
            b"this is not wasm at all".to_vec(),
            &["not a WebAssembly component"],
        ),
        (
            "truncated",
            v2[..v2.len() / 2].to_vec(),
            &["not a WebAssembly component"],
        ),
        (
            "wrong world",
            fixture("command"),
            &["does not fit the gridlet:plugin world", "handler"],
        ),
        (
            "missing import",
            fixture("missing-import"),
            &["does not fit", "example:nope/pager"],
        ),
    ];
    for (i, (what, bytes, words)) in broken.iter().enumerate() {
        let status = host.rejected("echo", bytes).await;
        assert_eq!(status["state"], "rejected", "{what}");
        assert_eq!(
            status["hash"],
            v1_hash.as_str(),
            "{what}: version 1 still serves"
        );
        let reason = status["rejected"]["reason"].as_str().unwrap_or("");
        for word in *words {
            assert!(
                reason.contains(word),
                "{what}: reason names `{word}`: {reason}"
            );
        }
        let id = format!("during-{i}");
        host.post_one(&id).await;
        assert_eq!(
            host.handled_by(&id).await,
            "echo",
            "{what}: version 1 handles events"
        );
    }

    // Back to version 1's file: nothing to load, the rejection is cleared.
    place(&host.dir, "echo", &fixture("echo"));
    let mut status = host.status("echo").await;
    while status["state"] != "serving" {
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = host.status("echo").await;
    }
    assert_eq!(status["rejected"], Value::Null);

    // An invalid manifest is rejected the same way, and the old one stays.
    let toml = host.dir.join("plugins/echo.toml");
    std::fs::write(&toml, manifest(&host.sink, "[limits.typo]\nx = 1\n")).expect("write");
    let mut status = host.status("echo").await;
    while status["state"] != "rejected" {
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = host.status("echo").await;
    }
    let reason = status["rejected"]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("echo.toml") && reason.contains("typo"),
        "{reason}"
    );
    host.post_one("bad-manifest").await;
    assert_eq!(host.handled_by("bad-manifest").await, "echo");

    // Fixing both files loads the new version.
    std::fs::write(&toml, manifest(&host.sink, "")).expect("write");
    host.swap("echo", &v2).await;
    let status = host.status("echo").await;
    assert_eq!(status["state"], "serving");
    assert_eq!(status["rejected"], Value::Null);
    host.post_one("fixed").await;
    assert_eq!(host.handled_by("fixed").await, "echo-v2");
    assert_eq!(
        host.server.dispatcher.stats().retry.load(Ordering::SeqCst),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_plugin_unloads_it_and_dead_letters_its_pending_deliveries() {
    let host = Host::start().await;
    host.sink.answer(503);
    let ids: Vec<(String, &str)> = (0..5)
        .map(|i| (format!("pending-{i}"), "models/m:1"))
        .collect();
    host.post(&ids).await;
    wait("failed attempts", || {
        host.server.dispatcher.stats().retry.load(Ordering::SeqCst) >= 5
    })
    .await;
    std::fs::remove_file(host.dir.join("plugins/echo.wasm")).expect("delete");
    wait("unloaded", || host.server.plugins.current().is_empty()).await;
    assert_eq!(host.status("echo").await["state"], "unloaded");
    wait("dead letters", || {
        host.server.dispatcher.stats().dead.load(Ordering::SeqCst) == 5
    })
    .await;
    let letters = host
        .server
        .dispatcher
        .journal()
        .dead_letters(Some("echo"))
        .expect("dead letters");
    assert_eq!(letters.len(), 5);
    assert!(
        letters.iter().all(|d| d.reason == "PluginNotFound"),
        "{letters:?}"
    );
    // New events no longer go to it.
    let before = host.sink.received().len();
    host.post_one("after-delete").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(host.sink.received().len(), before);
    assert_eq!(
        host.server.plugins.runtime().versions_alive(),
        0,
        "its code is freed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_changes_reuse_the_code_and_restarts_load_from_the_cache() {
    let host = Host::start().await;
    let status = host.status("echo").await;
    assert_eq!(status["code"], "compiled", "{status}");
    let cached = std::fs::read_dir(host.dir.join("state/compiled"))
        .expect("cache folder")
        .count();
    assert_eq!(cached, 1, "the compiled code is cached");

    // Only the manifest changes: a new filter, same code.
    let toml = host.dir.join("plugins/echo.toml");
    let filtered = manifest(
        &host.sink,
        "[filter]\nsubjectBeginsWith = \"models/wanted\"\n",
    );
    std::fs::write(&toml, filtered).expect("write");
    let mut status = host.status("echo").await;
    while status["filter"] == "all events" {
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = host.status("echo").await;
    }
    assert_eq!(status["code"], "reused", "{status}");
    host.post(&[
        ("unwanted".into(), "models/other:1"),
        ("wanted".into(), "models/wanted:1"),
    ])
    .await;
    assert_eq!(host.handled_by("wanted").await, "echo");
    assert!(host.builds("unwanted").is_empty(), "the new filter applies");

    // A restart on the same state loads the version from the cache.
    let (dir, sink) = (host.dir.clone(), host.sink.clone());
    let temp = host._temp;
    host.server.shutdown().await;
    let again = Host::on(&dir, sink).await;
    let status = again.status("echo").await;
    assert_eq!(status["code"], "cache", "{status}");
    assert!(status["loadMs"].as_f64().is_some());
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_being_written_is_not_loaded_until_closed() {
    let host = Host::start().await;
    let v1_hash = content_hash(&fixture("echo"));
    let v2 = fixture("echo-v2");
    // Written in place, in two halves, with a pause longer than the debounce.
    let path = host.dir.join("plugins/echo.wasm");
    let mut file = std::fs::File::create(&path).expect("create");
    file.write_all(&v2[..v2.len() / 2]).expect("first half");
    file.flush().expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = host.status("echo").await;
    assert_eq!(
        status["hash"],
        v1_hash.as_str(),
        "version 1 serves: {status}"
    );
    assert_eq!(
        status["rejected"],
        Value::Null,
        "the half file was not even tried: {status}"
    );
    file.write_all(&v2[v2.len() / 2..]).expect("second half");
    drop(file);
    let hash = content_hash(&v2);
    wait("version 2", || {
        host.serving_hash("echo").as_deref() == Some(hash.as_str())
    })
    .await;
    assert_eq!(host.status("echo").await["rejected"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_in_the_admin_api_and_the_cli() {
    let host = Host::start().await;
    host.post_one("counted").await;
    host.handled_by("counted").await;
    // The sink sees the request before dispatch counts the outcome.
    wait("the delivery counted", || {
        host.server.dispatcher.plugin_counters("echo").delivered == 1
    })
    .await;
    let base = format!("http://{}", host.server.addr);
    let unauthorized = host
        .client
        .get(format!("{base}/admin/plugins"))
        .send()
        .await
        .expect("get");
    assert_eq!(unauthorized.status(), 401);

    let list: Value = host
        .client
        .get(format!("{base}/admin/plugins"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let echo = &list["plugins"][0];
    assert_eq!(echo["name"], "echo");
    assert_eq!(echo["state"], "serving");
    assert_eq!(echo["hash"], content_hash(&fixture("echo")).as_str());
    assert!(echo["source"].as_str().unwrap_or("").ends_with("echo.wasm"));
    assert!(
        echo["manifest"]
            .as_str()
            .unwrap_or("")
            .ends_with("echo.toml")
    );
    assert_eq!(echo["filter"], "all events");
    assert_eq!(echo["limits"]["maxConcurrency"], 8);
    assert_eq!(echo["grants"]["allowedHosts"], json!([host.sink.host()]));
    // Config keys, never their values (they may be secrets).
    assert_eq!(echo["grants"]["configKeys"], json!(["name", "sink_url"]));
    assert!(!list.to_string().contains(&host.sink.url("/echo")));
    assert_eq!(echo["retry"]["maxDeliveryAttempts"], 30);
    assert_eq!(echo["counters"]["delivered"], 1);
    assert!(echo["loadedAt"].as_str().unwrap_or("").ends_with('Z'));
    let missing = host
        .client
        .get(format!("{base}/admin/plugins/nope"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridlet"))
        .args(["plugins", "--url", &base])
        .env("GRIDLET_ADMIN_TOKEN", TOKEN)
        .output()
        .await
        .expect("cli");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("echo"))
        .expect("a row for echo");
    assert!(
        row.contains("serving") && row.contains(&content_hash(&fixture("echo"))[..12]),
        "{row}"
    );
}
