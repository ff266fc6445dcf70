//! Throughput of the durable path: POST → journal commit → 200 → dispatch →
//! a trivial Rust plugin, with `gridlet serve` in its own process and this
//! binary as the load generator. Each configuration runs on a fresh journal;
//! fsync on and relaxed side by side, so the cost of durability is visible.
//!
//! Run: `cargo xtask plugins && cargo bench -p gridlet --bench durable`
//! (`-- --quick` for a short run).

mod common;

use common::{JournalWatch, free_port, serve};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const SENDERS: usize = 4;

/// Runs of each configuration; the table shows the median one and lists
/// all (this machine's throughput swings ±30 % between runs).
const ROUNDS: usize = 3;

/// The plugin's `max_concurrency` (`GRIDLET_BENCH_CONCURRENCY`, default
/// 64); the host's `max_in_flight` stays at its default.
fn concurrency() -> u32 {
    std::env::var("GRIDLET_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn batch(sender: usize, n: usize, size: usize) -> String {
    Value::Array(
        (0..size)
            .map(|i| {
                json!({
                    "id": format!("{sender}-{n}-{i}"),
                    "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w",
                    "subject": "experiments/e/runs/r",
                    "eventType": "Microsoft.MachineLearningServices.RunCompleted",
                    "eventTime": "2026-11-28T00:00:00Z",
                    "data": {"experimentId": "e", "experimentName": "nightly", "runId": format!("r{n}-{i}"),
                             "runType": "azureml.scriptrun", "runTags": {}, "runProperties": {}}
                })
            })
            .collect(),
    )
    .to_string()
}

/// CPU time (user + system) in a `/proc/.../stat` file, from its text.
fn stat_cpu(stat: &str) -> Duration {
    // Fields after the command name (which may hold spaces), from field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15: indexes 11 and 12 here.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Duration::from_secs_f64((ticks(11) + ticks(12)) as f64 / per_second)
}

/// The server's CPU time so far, in all and for its guest threads (where
/// plugins run: one thread on two cores, what limits delivery), from
/// `/proc`: per event it is steadier than throughput on a shared machine,
/// as a neighbour's load slows the run but costs the server no CPU.
fn cpu_time(pid: u32) -> (Duration, Duration) {
    let all = stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default());
    let mut guest = Duration::ZERO;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if name.trim_end() == "gridlet-guest" {
            guest += stat_cpu(&std::fs::read_to_string(path.join("stat")).unwrap_or_default());
        }
    }
    (all, guest)
}

/// What one configuration measured.
struct Row {
    acked_per_s: f64,
    delivered_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The server's CPU time per delivered event.
    cpu_us_per_event: f64,
    /// Its guest threads' part of it.
    guest_us_per_event: f64,
}

async fn run(size: usize, events: usize, fsync: bool) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut server = serve(dir.path(), port, concurrency(), fsync, "").await;
    let pid = server.id().unwrap_or(0);
    let cpu_before = cpu_time(pid);
    let url = format!("http://127.0.0.1:{port}/api/events?code=bench");
    let per_sender = events / size / SENDERS;
    // The bodies are written before the clock starts: the load generator
    // shares the machine's two cores with the server, and building JSON is
    // not what this measures.
    let bodies: Vec<Vec<String>> = (0..SENDERS)
        .map(|s| (0..per_sender).map(|n| batch(s, n, size)).collect())
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for bodies in bodies {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::with_capacity(per_sender);
            for body in bodies {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status(), 200);
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("sender"));
    }
    let acked = started.elapsed();
    let mut journal = JournalWatch::new(dir.path());
    while journal.pending() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered = started.elapsed();
    let cpu = cpu_time(pid);
    let (cpu, guest) = (
        cpu.0.saturating_sub(cpu_before.0),
        cpu.1.saturating_sub(cpu_before.1),
    );
    let _ = server.start_kill();
    let _ = server.wait().await;
    latencies.sort();
    let total = (per_sender * SENDERS * size) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Row {
        acked_per_s: total / acked.as_secs_f64(),
        delivered_per_s: total / delivered.as_secs_f64(),
        p50_ms: ms(latencies[latencies.len() / 2]),
        p99_ms: ms(latencies[latencies.len() * 99 / 100]),
        cpu_us_per_event: cpu.as_secs_f64() * 1e6 / total,
        guest_us_per_event: guest.as_secs_f64() * 1e6 / total,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let scale = if quick { 1 } else { 4 };
    let c = concurrency();
    println!(
        "gridlet serve (own process) ← {SENDERS} concurrent senders; plugin: trivial Rust (ok at once), max_concurrency {c}, max_in_flight default\n"
    );
    println!(
        "| batch | fsync | events | acknowledged events/s | delivered events/s (end to end) | request p50 ms | request p99 ms | server CPU µs per event | of it, guest threads | delivered events/s, each round |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for (size, events) in [(1, 2_000 * scale), (64, 16_384 * scale)] {
        // Rounds interleaved (on, relaxed, on, ...) so the machine's swings
        // hit both; each row is the round with the median delivered rate.
        let mut rounds: [Vec<Row>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..ROUNDS {
            for (i, fsync) in [true, false].into_iter().enumerate() {
                rounds[i].push(rt.block_on(run(size, events, fsync)));
            }
        }
        // Each round's figure in the order run, then the rounds by rate.
        let each: Vec<String> = rounds
            .iter()
            .map(|rs| {
                let rates: Vec<String> = rs
                    .iter()
                    .map(|r| format!("{:.0}", r.delivered_per_s))
                    .collect();
                rates.join(", ")
            })
            .collect();
        for rs in &mut rounds {
            rs.sort_by(|a, b| a.delivered_per_s.total_cmp(&b.delivered_per_s));
        }
        let mut medians = Vec::new();
        for (i, fsync) in [true, false].into_iter().enumerate() {
            let r = &rounds[i][rounds[i].len() / 2];
            println!(
                "| {size} | {} | {events} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} | {} |",
                if fsync { "on" } else { "relaxed" },
                r.acked_per_s,
                r.delivered_per_s,
                r.p50_ms,
                r.p99_ms,
                r.cpu_us_per_event,
                r.guest_us_per_event,
                each[i]
            );
            medians.push(r);
        }
        let (on, off) = (medians[0], medians[1]);
        println!(
            "| {size} | relaxed ÷ on | | | {:.2}× | | | {:.2}× | {:.2}× | |",
            off.delivered_per_s / on.delivered_per_s,
            off.cpu_us_per_event / on.cpu_us_per_event,
            off.guest_us_per_event / on.guest_us_per_event
        );
    }
}
