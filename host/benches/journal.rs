//! The SQLite journal alone, as the durable path uses it: batches of 64
//! events appended (one delivery each), claimed as the dispatcher claims
//! them, each outcome settled on its own and group-committed by the writer.
//! No HTTP, no plugin: the journal writer's share of a delivery's CPU (≈ a
//! third of the server's in the durable benchmark), measured as this
//! process's CPU time per event, fsync on and relaxed side by side.
//!
//! Its figures move with the machine; for comparing two builds of the
//! journal, count instructions instead, which do not:
//! `valgrind --tool=callgrind target/release/deps/journal-* --quick`.
//!
//! Run: `cargo bench -p gridlet --bench journal` (`-- --quick` for one
//! short round).

use gridlet::event::event_grid_from_text;
use gridlet::journal::{Journal, NewEvent, Settlement, Slots, SqliteJournal, now_ms};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BATCH: usize = 64;
/// Deliveries claimed at a time (a quarter of 8 × the durable benchmark's
/// `max_concurrency` of 64: what the dispatcher claims once that is free).
const CLAIM: u32 = 128;

fn event(n: usize) -> NewEvent {
    let text = format!(
        r#"{{"id":"e-{n}","topic":"/subscriptions/x/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w","subject":"experiments/e/runs/r","eventType":"Microsoft.MachineLearningServices.RunCompleted","eventTime":"2026-11-28T00:00:00Z","data":{{"experimentId":"e","experimentName":"nightly","runId":"r{n}","runType":"azureml.scriptrun","runTags":{{}},"runProperties":{{}}}}}}"#
    );
    NewEvent {
        event: Arc::new(event_grid_from_text(&text, 0).expect("event")),
        plugins: vec!["trivial".into()],
    }
}

/// This process's CPU time (user + system).
fn cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Append `events`, claim and settle every delivery; CPU µs and wall µs
/// per event.
fn run(events: usize, durable: bool) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = SqliteJournal::open(dir.path(), durable).expect("journal");
    let batches: Vec<Vec<NewEvent>> = (0..events / BATCH)
        .map(|b| (0..BATCH).map(|i| event(b * BATCH + i)).collect())
        .collect();
    let (cpu_before, started) = (cpu(), Instant::now());
    let (done_tx, done_rx) = mpsc::channel::<i64>();
    // Claimed and not yet settled, as the dispatcher tracks them: an id is
    // let go once its outcome is committed (SQLite may then give it to a
    // new delivery).
    let mut in_flight: Vec<i64> = Vec::new();
    let mut unclaimed = 0;
    let settle = |id: i64, in_flight: &mut Vec<i64>| in_flight.retain(|x| *x != id);
    for batch in batches {
        journal.append(batch).expect("append");
        unclaimed += BATCH;
        while unclaimed >= CLAIM as usize {
            while let Ok(id) = done_rx.try_recv() {
                settle(id, &mut in_flight);
            }
            // At most two claims' worth waiting for their commit (the
            // dispatcher holds 8 × max_concurrency, most of them running).
            while in_flight.len() >= 2 * CLAIM as usize {
                settle(done_rx.recv().expect("outcome"), &mut in_flight);
            }
            let slots = [Slots {
                plugin: "trivial".into(),
                free: CLAIM,
                overall: CLAIM,
                in_flight: in_flight.clone(),
            }];
            let claimed = journal
                .claim_due(now_ms(), CLAIM as usize, &slots, 0, &[])
                .expect("claim");
            if claimed.due.is_empty() {
                // Ids reused before their old outcome reached us: wait for one.
                assert!(!in_flight.is_empty(), "nothing claimed, nothing in flight");
                settle(done_rx.recv().expect("outcome"), &mut in_flight);
                continue;
            }
            unclaimed -= claimed.due.len();
            for d in claimed.due {
                in_flight.push(d.id);
                let tx = done_tx.clone();
                journal.settle(
                    Settlement::Complete(d.id),
                    Box::new(move |r| {
                        r.expect("settle");
                        let _ = tx.send(d.id);
                    }),
                );
            }
        }
    }
    while !in_flight.is_empty() {
        settle(done_rx.recv().expect("outcome"), &mut in_flight);
    }
    let (cpu, wall) = (cpu() - cpu_before, started.elapsed());
    let per = |d: Duration| d.as_secs_f64() * 1e6 / events as f64;
    (per(cpu), per(wall))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, events) = if quick { (1, 8_192) } else { (5, 32_768) };
    println!(
        "The SQLite journal alone: {events} events in batches of {BATCH}, one delivery each, claimed {CLAIM} at a time and each settled on its own; {rounds} interleaved rounds, median\n"
    );
    println!("| fsync | CPU µs per event | wall µs per event | CPU, each round |");
    println!("|---|---:|---:|---|");
    let mut results: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, durable) in [true, false].into_iter().enumerate() {
            results[i].push(run(events, durable));
        }
    }
    for (i, name) in ["on", "relaxed"].into_iter().enumerate() {
        let each: Vec<String> = results[i].iter().map(|r| format!("{:.1}", r.0)).collect();
        let mut sorted = results[i].clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (cpu, wall) = sorted[sorted.len() / 2];
        println!("| {name} | {cpu:.1} | {wall:.1} | {} |", each.join(", "));
    }
}
