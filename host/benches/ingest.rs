//! Reading a webhook body: a batch of 64 Event Grid events (the five ML
//! types in turn, from `examples/events/eventgrid`) through the same
//! `ingest::schema::read` every request takes — split, envelope, depth
//! check, typed ML data. Median µs per event over rounds.
//!
//! Run: `cargo bench -p gridlet --bench ingest` (`-- --quick` for fewer rounds).

use axum::http::HeaderMap;
use gridlet::ingest::schema::{self, Request};
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, reads) = if quick { (5, 200) } else { (21, 1_000) };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/events/eventgrid");
    let samples: Vec<String> = [
        "run-completed.json",
        "run-status-changed-failed.json",
        "model-registered.json",
        "model-deployed.json",
        "dataset-drift-detected.json",
    ]
    .iter()
    .map(|name| {
        let text = std::fs::read_to_string(dir.join(name)).expect("sample event");
        // Each sample file is an array of one event: keep the event.
        let events: Vec<serde_json::Value> = serde_json::from_str(&text).expect("array");
        events[0].to_string()
    })
    .collect();
    let body = format!(
        "[{}]",
        (0..64)
            .map(|i| samples[i % samples.len()].as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let headers = HeaderMap::new();
    let bytes = body.as_bytes();
    // Interleaved: gridlet's read, and the same body parsed into a
    // `serde_json::Value` tree (what reading it naively costs at least).
    let (mut read, mut tree) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..reads {
            match schema::read(&headers, bytes) {
                Ok(Request::Events(events)) => assert_eq!(events.len(), 64),
                other => panic!("not events: {other:?}"),
            }
        }
        read.push(t.elapsed() / (reads * 64));
        let t = Instant::now();
        for _ in 0..reads {
            let value: serde_json::Value = serde_json::from_slice(bytes).expect("json");
            std::hint::black_box(value);
        }
        tree.push(t.elapsed() / (reads * 64));
    }
    let (read, tree) = (median(read), median(tree));
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "A batch of 64 ML events ({} bytes), {rounds} interleaved rounds of {reads} reads; median µs per event\n",
        body.len()
    );
    println!("| path | µs per event | × a Value tree |");
    println!("|---|---:|---:|");
    println!(
        "| `serde_json::Value` tree of the body (no checks, no typed view) | {:.2} | 1.00 |",
        us(tree)
    );
    println!(
        "| **gridlet's read** (split, envelope, depth check, typed ML data) | {:.2} | {:.2} |",
        us(read),
        us(read) / us(tree)
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
