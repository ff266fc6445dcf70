//! Cluster mode through `gridlet serve` processes: two hosts on one real
//! `nats-server` (JetStream) share the work, and killing one (-9) under
//! load from four senders loses no acknowledged event. The durable-delivery
//! suite itself runs on JetStream in `durable.rs`.

mod common;

use common::nats::NatsServer;
use common::{Recorder, echo_grant, install, plugin_path};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The hosts' admin token.
const TOKEN: &str = "cluster-admin-token";

/// `gridlet serve` over `dir` (its gridlet.toml names the cluster), on a
/// free port; the child and its events URL.
async fn host(dir: &Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_gridlet"))
        .arg("serve")
        .current_dir(dir)
        .env("GRIDLET_CONFIG", dir.join("gridlet.toml"))
        .env("GRIDLET_LISTEN", format!("127.0.0.1:{port}"))
        .env("GRIDLET_PLUGINS_DIR", dir.join("plugins"))
        .env("GRIDLET_STATE_DIR", dir.join("state"))
        .env("GRIDLET_SECRET", "cluster-secret")
        .env("GRIDLET_RETRY_DELAYS_MS", "20,50")
        .env("GRIDLET_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "host did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (
        child,
        format!("http://127.0.0.1:{port}/api/events?code=cluster-secret"),
    )
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

/// How many times the sink received each event id.
fn deliveries(sink: &Recorder) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for r in sink.received() {
        if let Some(id) = serde_json::from_str::<Value>(&r.body)
            .ok()
            .and_then(|j| j["id"].as_str().map(str::to_string))
        {
            *seen.entry(id).or_default() += 1;
        }
    }
    seen
}

/// Two hosts' folders on the cluster at `urls` with `replicas`, each with
/// the echo plugin posting to `sink`, its manifest allowing 4 at once.
fn two_hosts(sink: &Recorder, urls: &[String], replicas: usize) -> [tempfile::TempDir; 2] {
    two_hosts_with(sink, urls, replicas, 4)
}

/// [`two_hosts`], echo's manifest allowing `max_concurrency`.
fn two_hosts_with(
    sink: &Recorder,
    urls: &[String],
    replicas: usize,
    max_concurrency: u32,
) -> [tempfile::TempDir; 2] {
    let dirs = [
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    ];
    let urls = urls
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    for dir in &dirs {
        std::fs::write(
            dir.path().join("gridlet.toml"),
            format!(
                "allow_private_networks = [\"127.0.0.1/32\"]\n\
                 [cluster]\nurls = [{urls}]\nreplicas = {replicas}\nack_wait_ms = 2000\n"
            ),
        )
        .expect("gridlet.toml");
        install(
            dir.path(),
            "echo",
            "echo",
            &format!("[limits]\nmax_concurrency = {max_concurrency}\n"),
            &echo_grant(sink, "echo"),
        );
    }
    dirs
}

/// What the senders saw.
#[derive(Default)]
struct Sent {
    /// Event ids answered 200.
    acked: HashSet<String>,
    /// Answers other than 200 (each batch was sent again).
    refused: usize,
}

/// Four senders, two per URL, each posting 60 batches of 10. With
/// `retry`, a refused batch is sent again (as Event Grid does) until it
/// is acknowledged; without, a sender stops at its first refusal (its host
/// is gone; a load balancer would send the rest to the other one).
fn senders(
    urls: [&String; 2],
    retry: bool,
    sent: &Arc<Mutex<Sent>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|sender| {
            let url = urls[sender % 2].clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for n in 0..60 {
                    let body = batch(sender, n);
                    loop {
                        let response = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.to_string())
                            .send()
                            .await;
                        if response.as_ref().is_ok_and(|r| r.status() == 200) {
                            let mut sent = sent.lock().expect("lock");
                            for e in body.as_array().expect("array") {
                                sent.acked.insert(e["id"].as_str().expect("id").to_string());
                            }
                            break;
                        }
                        sent.lock().expect("lock").refused += 1;
                        if !retry {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect()
}

/// Wait until `sink` received every acknowledged event; how many arrived
/// more than once.
async fn all_delivered(sink: &Recorder, acked: &HashSet<String>) -> usize {
    let started = Instant::now();
    loop {
        let got = deliveries(sink);
        let missing: Vec<&String> = acked.iter().filter(|id| !got.contains_key(*id)).collect();
        if missing.is_empty() {
            return got.values().map(|n| n - 1).sum();
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{} acknowledged events never delivered, e.g. {:?}",
            missing.len(),
            missing.iter().take(3).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A host's base URL from its events URL.
fn base_of(events_url: &str) -> String {
    events_url.split("/api/").next().expect("base").to_string()
}

/// `name`'s status on the host at `base` (null when it does not answer
/// JSON).
async fn plugin_status(base: &str, name: &str) -> Value {
    let answer = reqwest::Client::new()
        .get(format!("{base}/admin/plugins/{name}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("status");
    answer.json().await.unwrap_or(Value::Null)
}

/// Post `sender`'s batch `n` to `url`: its answer's status.
async fn post_batch(url: &str, sender: usize, n: usize) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(batch(sender, n).to_string())
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

/// Post `sender`'s batch `n` to `url` and wait until `sink` got all of it.
async fn deliver_batch(url: &str, sender: usize, n: usize, sink: &Recorder) {
    assert_eq!(post_batch(url, sender, n).await, 200);
    let acked: HashSet<String> = (0..10).map(|i| format!("s{sender}-b{n}-e{i}")).collect();
    all_delivered(sink, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_two_hosts_under_load_loses_no_acknowledged_event() {
    let nats = NatsServer::start();
    let sink = Recorder::start().await;
    // A slow service: deliveries back up, so the killed host holds some.
    sink.answer_after(Duration::from_millis(20));
    let dirs = two_hosts(&sink, &[nats.url()], 1);
    let (mut a, url_a) = host(dirs[0].path()).await;
    let (_b, url_b) = host(dirs[1].path()).await;

    let sent: Arc<Mutex<Sent>> = Arc::default();
    let load = senders([&url_a, &url_b], false, &sent);
    while sent.lock().expect("lock").acked.len() < 400 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.start_kill().expect("SIGKILL");
    a.wait().await.expect("dead");
    for s in load {
        let _ = s.await;
    }
    let acked = sent.lock().expect("lock").acked.clone();
    let delivered_then = deliveries(&sink).len();
    assert!(
        delivered_then < acked.len(),
        "the kill left deliveries pending ({delivered_then} of {})",
        acked.len()
    );

    // The surviving host delivers everything, the dead host's claims too
    // (after the ack wait).
    sink.answer_after(Duration::ZERO);
    let duplicates = all_delivered(&sink, &acked).await;
    println!(
        "{} acknowledged events, all delivered; {duplicates} delivered more than once \
         (the killed host's deliveries in flight)",
        acked.len()
    );
}

/// The manifest's `max_concurrency` bounds the whole cluster: echo allows
/// 2 at once and each host may run 2, so two busy hosts would run 4
/// without the cluster's slots. The sink counts the requests it holds at
/// once (each answered after 100 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_bounds_the_whole_cluster() {
    let nats = NatsServer::start();
    let sink = Recorder::start().await;
    sink.answer_after(Duration::from_millis(100));
    let dirs = two_hosts_with(&sink, &[nats.url()], 1, 2);
    let (_a, url_a) = host(dirs[0].path()).await;
    let (_b, url_b) = host(dirs[1].path()).await;
    let sent: Arc<Mutex<Sent>> = Arc::default();
    let load = senders([&url_a, &url_b], false, &sent);
    // 60 batches of 10 per sender would take minutes at 20/s: stop after
    // 40 events.
    while sent.lock().expect("lock").acked.len() < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for s in &load {
        s.abort();
    }
    let acked = sent.lock().expect("lock").acked.clone();
    all_delivered(&sink, &acked).await;
    let delivered = async |url: &str| {
        plugin_status(&base_of(url), "echo").await["counters"]["delivered"]
            .as_u64()
            .unwrap_or(0)
    };
    let (a, b) = (delivered(&url_a).await, delivered(&url_b).await);
    println!(
        "{} events; host a delivered {a}, host b {b}; most at once: {}",
        acked.len(),
        sink.most_at_once()
    );
    assert_eq!(sink.most_at_once(), 2, "the manifest's 2, cluster-wide");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_one_of_three_nats_nodes_under_load_loses_nothing() {
    let mut nats = NatsServer::cluster(3);
    let urls: Vec<String> = nats.iter().map(NatsServer::url).collect();
    let sink = Recorder::start().await;
    let dirs = two_hosts(&sink, &urls, 3);
    let (_a, url_a) = host(dirs[0].path()).await;
    let (_b, url_b) = host(dirs[1].path()).await;

    let sent: Arc<Mutex<Sent>> = Arc::default();
    let load = senders([&url_a, &url_b], true, &sent);
    while sent.lock().expect("lock").acked.len() < 400 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // One node of three dies (kill -9); the streams keep a majority.
    nats[1].kill();
    for s in load {
        s.await.expect("sender");
    }
    let (acked, refused) = {
        let sent = sent.lock().expect("lock");
        (sent.acked.clone(), sent.refused)
    };
    assert_eq!(acked.len(), 2400, "every batch acknowledged in the end");
    let duplicates = all_delivered(&sink, &acked).await;
    println!(
        "{} acknowledged events with a NATS node down, all delivered; {refused} batches \
         answered 503 and sent again, {duplicates} events delivered more than once",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_loses_nats_answers_503_and_recovers_by_itself() {
    let mut nats = NatsServer::start();
    let sink = Recorder::start().await;
    let dirs = two_hosts(&sink, &[nats.url()], 1);
    let (_a, url) = host(dirs[0].path()).await;
    let base = base_of(&url);
    let client = reqwest::Client::new();
    assert_eq!(post_batch(&url, 9, 0).await, 200);
    let started = Instant::now();
    let mut metrics = common::process::metrics(&client, &base).await;
    // The consumer's lag is reported once it is bound (within a second).
    while !metrics.contains("gridlet_cluster_ack_pending{plugin=\"echo\"}") {
        assert!(started.elapsed() < Duration::from_secs(10), "{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        metrics = common::process::metrics(&client, &base).await;
    }

    nats.kill();
    let refused = post_batch(&url, 9, 1).await;
    assert_eq!(refused, 503, "never 200 for what was not stored");
    let started = Instant::now();
    loop {
        let ready = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz");
        if ready.status() == 503 {
            let body: Value = ready.json().await.expect("json");
            assert_eq!(body["checks"]["journal"], "not writable", "{body}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "still ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    nats.restart();
    let started = Instant::now();
    loop {
        let status = post_batch(&url, 9, 1).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(started.elapsed() < Duration::from_secs(30), "no recovery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let acked: HashSet<String> = (0..2)
        .flat_map(|n| {
            batch(9, n)
                .as_array()
                .expect("array")
                .iter()
                .map(|e| e["id"].as_str().expect("id").to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    all_delivered(&sink, &acked).await;
}

/// `gridlet plugins <args>` against `base` with the admin token: its exit
/// code and output.
async fn plugins_cli(base: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gridlet"))
        .arg("plugins")
        .args(args)
        .env("GRIDLET_URL", base)
        .env("GRIDLET_ADMIN_TOKEN", TOKEN)
        .output()
        .await
        .expect("gridlet plugins");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Wait until `check` holds for `relay`'s status on every host.
async fn on_both(bases: &[String; 2], what: &str, check: impl Fn(&Value) -> bool) -> [Value; 2] {
    let started = Instant::now();
    loop {
        let mut seen = Vec::new();
        for base in bases {
            seen.push(plugin_status(base, "relay").await);
        }
        if seen.iter().all(&check) {
            return [seen[0].clone(), seen[1].clone()];
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{what}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_plugin_reaches_both_hosts_and_a_broken_push_leaves_them_serving() {
    let nats = NatsServer::start();
    let sink = Recorder::start().await;
    let dirs = [
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    ];
    for dir in &dirs {
        // The operator grants `relay` on every host; its files come from
        // the cluster, not the (empty) plugins folder.
        std::fs::create_dir_all(dir.path().join("plugins")).expect("plugins");
        std::fs::write(
            dir.path().join("gridlet.toml"),
            format!(
                "allow_private_networks = [\"127.0.0.1/32\"]\n\
                 [plugins.relay]\n{}\n\
                 [cluster]\nurls = [\"{}\"]\nreplicas = 1\n",
                echo_grant(&sink, "relay"),
                nats.url()
            ),
        )
        .expect("gridlet.toml");
    }
    let (_a, url_a) = host(dirs[0].path()).await;
    let (_b, url_b) = host(dirs[1].path()).await;
    let base = |url: &str| url.split("/api/").next().expect("base").to_string();
    let bases = [base(&url_a), base(&url_b)];
    let files = tempfile::tempdir().expect("files");
    let relay = files.path().join("relay.wasm");
    let push = async |fixture: &str| {
        std::fs::copy(plugin_path(fixture), &relay).expect("copy");
        plugins_cli(&bases[0], &["push", relay.to_str().expect("path")]).await
    };

    // Pushed once through host A: both hosts serve it.
    let (code, out) = push("echo").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("pushed relay"), "{out}");
    let first = on_both(&bases, "serving on both", |s| s["state"] == "serving").await;
    assert_eq!(first[0]["hash"], first[1]["hash"]);
    let serving = first[0]["hash"].clone();
    // An event sent to host B reaches the pushed plugin.
    deliver_batch(&url_b, 7, 0, &sink).await;

    // A push that cannot load: both hosts say why and keep the old version.
    let (code, out) = push("missing-import").await;
    assert_eq!(code, Some(0), "{out}");
    let broken = on_both(&bases, "rejected on both", |s| !s["rejected"].is_null()).await;
    for status in &broken {
        // "rejected": the newest files were refused; `hash` is what serves.
        assert_eq!(status["state"], "rejected", "{status}");
        assert_eq!(status["hash"], serving, "the old version serves on");
        assert!(
            status["rejected"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("example:nope/pager")),
            "{status}"
        );
    }
    deliver_batch(&url_a, 7, 1, &sink).await;

    // A good new version replaces it everywhere.
    let (code, out) = push("echo-v2").await;
    assert_eq!(code, Some(0), "{out}");
    let second = on_both(&bases, "v2 on both", |s| {
        s["state"] == "serving" && s["hash"] != serving && s["rejected"].is_null()
    })
    .await;
    assert_eq!(second[0]["hash"], second[1]["hash"]);
    let (_, listed) = plugins_cli(&bases[1], &["push", "/nonexistent/x.wasm"]).await;
    assert!(
        listed.contains("x.wasm"),
        "a missing file is named: {listed}"
    );

    // What is not a plugin is refused before anything is stored.
    let http = reqwest::Client::new();
    for (name, body, kind) in [
        ("bad.name", json!({"wasm": "AGFzbQ=="}), "bad-plugin-name"),
        ("Relay", json!({"wasm": "AGFzbQ=="}), "bad-plugin-name"),
        ("relay", json!({"wasm": "not base64!"}), "malformed-wasm"),
        ("relay", json!({"wasm": "PGh0bWw+"}), "malformed-wasm"),
    ] {
        let r = http
            .put(format!("{}/admin/cluster/plugins/{name}", bases[0]))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("put");
        assert_eq!(r.status(), 400, "{name}");
        let problem: Value = r.json().await.expect("problem");
        assert_eq!(problem["type"], kind, "{problem}");
    }
    let refused = http
        .put(format!("{}/admin/cluster/plugins/relay", bases[0]))
        .bearer_auth("wrong")
        .json(&json!({"wasm": "AGFzbQ=="}))
        .send()
        .await
        .expect("put");
    assert_eq!(refused.status(), 401);
    let still = on_both(&bases, "v2 still serving", |s| {
        s["hash"] == second[0]["hash"]
    })
    .await;
    assert_eq!(still[0]["state"], "serving");

    // Removed with one command: no host serves it any more.
    let (code, out) = plugins_cli(&bases[1], &["remove", "relay"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("removed relay"), "{out}");
    on_both(&bases, "gone from both", |s| s["state"] != "serving").await;
}

/// A port such that it and the next 31 are free (the cluster example's).
fn free_range() -> u16 {
    (20_000..60_000)
        .step_by(97)
        .find(|&base| {
            (base..base + 32).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        })
        .expect("32 free ports")
}

/// `examples/cluster/run.sh --once`, as the README tells a user to run it:
/// three NATS nodes, two hosts, the example plugins pushed, the samples
/// delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_example_runs() {
    let out = Command::new("bash")
        .arg(common::root().join("examples/cluster/run.sh"))
        .arg("--once")
        .env("GRIDLET_BIN", env!("CARGO_BIN_EXE_gridlet"))
        .env("NATS_SERVER", common::nats::binary())
        .env("GRIDLET_CLUSTER_PORT", free_range().to_string())
        .output()
        .await
        .expect("run.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("ok: both hosts served the pushed plugins"),
        "{text}"
    );
    assert!(
        text.contains("POST /retrain"),
        "the drift event reached the pipeline: {text}"
    );
}

/// A plugin on two hosts counts events in its key-value state (the C
/// example, audit-counter: an atomic increment per event): 1,000 events
/// sent half to each host end as exactly 1,000, and both hosts did work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_kept_by_a_plugin_on_two_hosts_is_exact() {
    let nats = NatsServer::start();
    let dirs = [
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    ];
    for dir in &dirs {
        std::fs::write(
            dir.path().join("gridlet.toml"),
            format!("[cluster]\nurls = [\"{}\"]\nreplicas = 1\n", nats.url()),
        )
        .expect("gridlet.toml");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins");
        let wasm = plugin_path("audit-counter");
        std::fs::copy(&wasm, plugins.join("audit-counter.wasm")).expect("wasm");
        std::fs::copy(
            wasm.with_extension("toml"),
            plugins.join("audit-counter.toml"),
        )
        .expect("manifest");
    }
    let (_a, url_a) = host(dirs[0].path()).await;
    let (_b, url_b) = host(dirs[1].path()).await;
    let sent: Arc<Mutex<Sent>> = Arc::default();
    // Two senders per host, 25 batches of 10 each: 1,000 events.
    let mut load = Vec::new();
    for sender in 0..4 {
        let url = [&url_a, &url_b][sender % 2].clone();
        let sent = sent.clone();
        load.push(tokio::spawn(async move {
            for n in 0..25 {
                let body = batch(sender, n);
                assert_eq!(post_batch(&url, sender, n).await, 200);
                sent.lock().expect("lock").acked.extend(
                    body.as_array()
                        .expect("array")
                        .iter()
                        .map(|e| e["id"].as_str().expect("id").to_string()),
                );
            }
        }));
    }
    for l in load {
        l.await.expect("sender");
    }
    assert_eq!(sent.lock().expect("lock").acked.len(), 1000);

    let client = async_nats::connect(nats.url()).await.expect("nats");
    let kv = gridlet::runtime::JetStreamKeyValue::new(async_nats::jetstream::new(client), 1);
    let count = async || {
        use gridlet::runtime::KeyValue;
        kv.get("audit-counter", "default", "type:ModelRegistered")
            .await
            .expect("get")
            .map_or(0, |v| u64::from_le_bytes(v.try_into().expect("8 bytes")))
    };
    let started = Instant::now();
    while count().await < 1000 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "counted {}",
            count().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count().await, 1000, "exactly once each, no increment lost");
    // Both hosts took part.
    for url in [&url_a, &url_b] {
        let base = base_of(url);
        let status = plugin_status(&base, "audit-counter").await;
        let delivered = status["counters"]["delivered"].as_u64().unwrap_or(0);
        assert!(delivered > 0, "{base} delivered none: {status}");
        println!("{base}: {delivered} of the 1,000 deliveries");
    }
}
