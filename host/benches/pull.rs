//! Pull delivery beside the webhook, in one run: the same events (CloudEvents,
//! RunCompleted), the same trivial Rust plugin, the same `gridlet serve`
//! (its own process, fsync on), each on a fresh journal — pushed by 4
//! senders in batches of 100, or pulled in batches of 100 from the
//! namespace emulator (`tests/common/namespace.rs`, in this process).
//! Delivered events/s end to end: from the first request to the last
//! delivery's outcome committed (and, for pull, the last acknowledgement).
//!
//! Run: `cargo xtask plugins && cargo bench -p gridlet --bench pull`
//! (`-- --quick` for a short run).

#[path = "../tests/common/namespace.rs"]
#[allow(dead_code)]
mod namespace;

mod common;

use common::{JournalWatch, free_port as port, serve};
use namespace::Emulator;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SENDERS: usize = 4;
const BATCH: usize = 100;
const KEY: &str = "bench-namespace-key";

fn event(id: &str) -> Value {
    json!({
        "specversion": "1.0", "id": id,
        "source": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w",
        "type": "Microsoft.MachineLearningServices.RunCompleted",
        "subject": "experiments/e/runs/r", "time": "2026-11-30T00:00:00Z",
        "data": {"experimentId": "e", "experimentName": "nightly", "runId": id,
                 "runType": "azureml.scriptrun", "runTags": {}, "runProperties": {}}
    })
}

/// Delivered events/s through the webhook.
async fn webhook(events: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = port();
    let mut server = serve(dir.path(), port, 64, true, "").await;
    let url = format!("http://127.0.0.1:{port}/api/events?code=bench");
    let per_sender = events / BATCH / SENDERS;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0..per_sender {
                let body: Vec<Value> = (0..BATCH)
                    .map(|i| event(&format!("w{s}-{n}-{i}")))
                    .collect();
                let r = client
                    .post(&url)
                    .header("content-type", "application/cloudevents-batch+json")
                    .body(Value::Array(body).to_string())
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status(), 200);
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let mut journal = JournalWatch::new(dir.path());
    while journal.pending() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = (per_sender * SENDERS * BATCH) as f64 / started.elapsed().as_secs_f64();
    let _ = server.start_kill();
    let _ = server.wait().await;
    rate
}

/// Delivered events/s through pull with `concurrency` receive loops.
async fn pull(events: usize, concurrency: u32) -> f64 {
    let emulator = Emulator::start(KEY, "ml", &["gridlet"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        "[[pull]]\nendpoint = \"{}\"\ntopic = \"ml\"\nsubscription = \"gridlet\"\nkey = \"{KEY}\"\nmax_events = {BATCH}\nmax_wait_seconds = 10\nconcurrency = {concurrency}\n",
        emulator.endpoint()
    );
    let mut server = serve(dir.path(), port(), 64, true, &extra).await;
    // Published once gridlet is up, as the webhook's first request is sent.
    let all: Vec<Value> = (0..events).map(|i| event(&format!("p{i}"))).collect();
    let started = Instant::now();
    emulator.publish(&all);
    let mut journal = JournalWatch::new(dir.path());
    loop {
        if !journal.pending()
            && journal.events() as usize >= events
            && emulator.queued("gridlet") == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    let _ = server.start_kill();
    let _ = server.wait().await;
    rate
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let events = if quick { 4_000 } else { 16_000 };
    println!(
        "gridlet serve (own process, fsync on), trivial Rust plugin (max_concurrency 64); {events} CloudEvents per row, batches of {BATCH}; the emulator and the webhook's {SENDERS} senders run in the benchmark process\n"
    );
    println!("| source | batch | events | delivered events/s (end to end) | × webhook |");
    println!("|---|---:|---:|---:|---:|");
    let pushed = rt.block_on(webhook(events));
    println!("| webhook, {SENDERS} senders | {BATCH} | {events} | {pushed:.0} | 1.00 |");
    for concurrency in [1, 4] {
        let pulled = rt.block_on(pull(events, concurrency));
        println!(
            "| pull, {concurrency} receive loop{} | {BATCH} | {events} | {pulled:.0} | {:.2} |",
            if concurrency == 1 { "" } else { "s" },
            pulled / pushed
        );
    }
}
