//! Cluster mode through `gridlet serve` processes: two hosts on one real
//! `nats-server` (JetStream) share the work, and killing one (-9) under
//! load from four senders loses no acknowledged event. The durable-delivery
//! suite itself runs on JetStream in `durable.rs`.

mod common;

use common::nats::NatsServer;
use common::{Recorder, echo_grant, install};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_of_two_hosts_under_load_loses_no_acknowledged_event() {
    let nats = NatsServer::start();
    let sink = Recorder::start().await;
    // A slow service: deliveries back up, so the killed host holds some.
    sink.answer_after(Duration::from_millis(20));
    let dirs = [
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    ];
    for dir in &dirs {
        std::fs::write(
            dir.path().join("gridlet.toml"),
            format!(
                "allow_private_networks = [\"127.0.0.1/32\"]\n\
                 [cluster]\nurls = [\"{}\"]\nreplicas = 1\nack_wait_ms = 2000\n",
                nats.url()
            ),
        )
        .expect("gridlet.toml");
        install(
            dir.path(),
            "echo",
            "echo",
            "[limits]\nmax_concurrency = 4\n",
            &echo_grant(&sink, "echo"),
        );
    }
    let (mut a, url_a) = host(dirs[0].path()).await;
    let (_b, url_b) = host(dirs[1].path()).await;

    // Four senders, two per host, post batches of 10; a sender whose host
    // died stops (a load balancer would send the rest to the other host).
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut senders = Vec::new();
    for sender in 0..4 {
        let url = if sender % 2 == 0 { &url_a } else { &url_b }.clone();
        let acked = acked.clone();
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0..60 {
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
                    Ok(_) | Err(_) => return,
                }
            }
        }));
    }
    while acked.lock().expect("lock").len() < 400 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.start_kill().expect("SIGKILL");
    a.wait().await.expect("dead");
    for s in senders {
        let _ = s.await;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= 400);
    let delivered_then = deliveries(&sink).len();
    assert!(
        delivered_then < acked.len(),
        "the kill left deliveries pending ({delivered_then} of {})",
        acked.len()
    );

    // The surviving host delivers everything, the dead host's claims too
    // (after the ack wait).
    sink.answer_after(Duration::ZERO);
    let started = Instant::now();
    loop {
        let got = deliveries(&sink);
        let missing: Vec<&String> = acked.iter().filter(|id| !got.contains_key(*id)).collect();
        if missing.is_empty() {
            let duplicates: usize = got.values().map(|n| n - 1).sum();
            println!(
                "{} acknowledged events, all delivered; {duplicates} delivered more than once \
                 (the killed host's deliveries in flight)",
                acked.len()
            );
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
