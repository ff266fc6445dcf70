//! Opt-in instance reuse (`limits.reuse_instance`): an instance serves up to
//! N deliveries, one at a time, and is discarded after any failure. The echo
//! fixture reports how many deliveries its instance has handled.

mod common;

use common::{Recorder, event, grant, load, runtime};
use gridlet::event::Event;
use gridlet::plugin::PluginGrant;
use gridlet::runtime::Outcome;
use std::time::Duration;

fn manifest(limits: &str) -> String {
    format!("[limits]\n{limits}\n")
}

/// Echo posts to `sink`.
fn to(sink: &Recorder) -> PluginGrant {
    grant(&[("sink_url", &sink.url("/echo"))], &[&sink.host()])
}

/// `instanceCalls` of every POST so far.
fn calls(sink: &Recorder) -> Vec<u64> {
    sink.received()
        .iter()
        .map(|r| r.json()["instanceCalls"].as_u64().expect("instanceCalls"))
        .collect()
}

fn sample() -> Event {
    event("eventgrid/model-registered.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_instance_serves_n_deliveries_then_is_replaced() {
    let sink = Recorder::start().await;
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "echo",
        &manifest("reuse_instance = 3"),
        &to(&sink),
    );
    for _ in 0..7 {
        let outcome = runtime.invoke(&plugin.version, &sample(), 1).await.outcome;
        assert_eq!(outcome, Outcome::Handled);
    }
    assert_eq!(calls(&sink), vec![1, 2, 3, 1, 2, 3, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_discards_the_instance() {
    let sink = Recorder::start().await;
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "echo",
        &manifest("reuse_instance = 100"),
        &to(&sink),
    );
    runtime.invoke(&plugin.version, &sample(), 1).await;
    runtime.invoke(&plugin.version, &sample(), 1).await;
    sink.answer(503);
    let outcome = runtime.invoke(&plugin.version, &sample(), 1).await.outcome;
    assert!(matches!(outcome, Outcome::Retry(_)), "{outcome:?}");
    sink.answer(200);
    runtime.invoke(&plugin.version, &sample(), 1).await;
    runtime.invoke(&plugin.version, &sample(), 1).await;
    assert_eq!(
        calls(&sink),
        vec![1, 2, 3, 1, 2],
        "a fresh instance after the retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_option_every_delivery_gets_a_fresh_instance() {
    let sink = Recorder::start().await;
    let runtime = runtime();
    let plugin = load(&runtime, "echo", &manifest(""), &to(&sink));
    for _ in 0..4 {
        runtime.invoke(&plugin.version, &sample(), 1).await;
    }
    assert_eq!(calls(&sink), vec![1, 1, 1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_instance_never_serves_two_deliveries_at_once() {
    let sink = Recorder::start().await;
    // Each delivery waits on the sink, so the two overlap.
    sink.answer_after(Duration::from_millis(300));
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "echo",
        &manifest("reuse_instance = 100\nmax_concurrency = 2"),
        &to(&sink),
    );
    let (first, second) = (sample(), sample());
    let (a, b) = tokio::join!(
        runtime.invoke(&plugin.version, &first, 1),
        runtime.invoke(&plugin.version, &second, 1)
    );
    assert_eq!((a.outcome, b.outcome), (Outcome::Handled, Outcome::Handled));
    assert_eq!(calls(&sink), vec![1, 1], "two instances, one delivery each");
    runtime.invoke(&plugin.version, &sample(), 1).await;
    let third = calls(&sink)[2];
    assert_eq!(third, 2, "then one of them is reused");
}

/// The component's imported interfaces, by name.
fn imports(name: &str) -> Vec<String> {
    let engine = wasmtime::Engine::default();
    let component = wasmtime::component::Component::from_file(&engine, common::plugin_path(name))
        .expect("a component");
    component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The Rust SDK built for wasm32-unknown-unknown (`cargo xtask plugins`
/// builds the `noop` fixture that way, its start-up memory exactly 3 MiB):
/// no WASI import but the log the SDK reports panics to — the same plugin
/// for wasm32-wasip2 imports std's `wasi:cli` interfaces, each wired into
/// every fresh instance — and the
/// SDK's heap lives in the memory the instance starts with, so neither a
/// fresh instance nor one reused for many deliveries ever grows it (std's
/// allocator on that target would `memory.grow` on the first allocation
/// and trap at this 3 MiB cap).
#[tokio::test]
async fn the_sdk_without_wasi_imports_only_its_log_and_allocates_in_start_up_memory() {
    let with_std = imports("noop");
    assert!(
        with_std.iter().any(|i| i.starts_with("wasi:cli/")),
        "{with_std:?}"
    );
    let mut without = imports("noop-no-wasi");
    without.sort();
    assert_eq!(
        without,
        [
            "gridlet:plugin/types@0.1.0",
            "wasi:logging/logging@0.1.0-draft"
        ]
    );

    let runtime = runtime();
    let at_cap = manifest("memory_mib = 3");
    let fresh = load(&runtime, "noop-no-wasi", &at_cap, &PluginGrant::default());
    for attempt in 1..=20 {
        let outcome = runtime.invoke(&fresh.version, &sample(), attempt).await;
        assert_eq!(outcome.outcome, Outcome::Handled, "{outcome:?}");
    }
    let reused = load(
        &runtime,
        "noop-no-wasi",
        &manifest("memory_mib = 3\nreuse_instance = 1000"),
        &PluginGrant::default(),
    );
    for attempt in 1..=500 {
        let outcome = runtime.invoke(&reused.version, &sample(), attempt).await;
        assert_eq!(outcome.outcome, Outcome::Handled, "{outcome:?}");
    }
}
