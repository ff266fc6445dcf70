//! The example plugin of each guest language side by side: component size,
//! compile time, load time from the compile cache, instantiate time, and
//! the per-event cost with a fresh instance (gridlet's default) and with
//! instance reuse (`limits.reuse_instance`), all in one run.
//!
//! Each plugin gets an event it handles without calling out, so the figures
//! are the language runtime's cost, not a network's:
//! Rust `model-promotion` on a ModelRegistered not tagged for prod (reads
//! tags, returns), Python `drift-guard` on drift below its threshold (reads
//! config, logs), JavaScript `deployment-notifier` on a ModelRegistered (not
//! its event type: enters the engine and returns), C `audit-counter` on
//! RunCompleted (two key-value increments, one log line).
//!
//! Run: `cargo xtask plugins && cargo bench -p gridlet --bench languages`
//! (`-- --quick` for fewer rounds; `-- --profile Python` loops one
//! language's fresh path for `perf record`). To measure another build of one
//! language's plugin against the shipped one: `GRIDLET_BENCH_ONLY=JavaScript`
//! runs only that row, and with it `GRIDLET_BENCH_WASM=<file>` takes the component
//! from `<file>` instead of `target/plugins/`.

use gridlet::event::{self, Event};
use gridlet::plugin::{self, LoadedPlugin, Manifest, PluginGrant};
use gridlet::runtime::{MemoryKeyValue, Outcome, Runtime, RuntimeSettings, WarmInstance};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::Component;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Language {
    name: &'static str,
    plugin: &'static str,
    config: &'static [(&'static str, &'static str)],
    event: &'static str,
}

const LANGUAGES: [Language; 4] = [
    Language {
        name: "Rust",
        plugin: "model-promotion",
        config: &[("deploy_url", "https://deploy.example.com/")],
        event: "model-registered-pascalcase.json",
    },
    Language {
        name: "C",
        plugin: "audit-counter",
        config: &[],
        event: "run-completed.json",
    },
    Language {
        name: "Python",
        plugin: "drift-guard",
        config: &[
            ("threshold", "0.99"),
            ("pipeline_url", "https://pipeline.example.com/"),
        ],
        event: "dataset-drift-detected.json",
    },
    Language {
        name: "JavaScript",
        plugin: "deployment-notifier",
        config: &[("chat_webhook_url", "https://chat.example.com/")],
        event: "model-registered.json",
    },
];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Time `f` `n` times; the median.
fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn load(runtime: &Runtime, l: &Language, wasm: &Path, reuse: u32) -> LoadedPlugin {
    let text = format!("[limits]\nreuse_instance = {reuse}\n");
    let manifest = Manifest::parse(&text, Path::new("bench.toml")).expect("manifest");
    let mut grant = PluginGrant::default();
    for (key, value) in l.config {
        grant.config.insert(*key, *value);
    }
    plugin::load(runtime, wasm, manifest, &grant, None).expect("plugin")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--profile <language>`: only that language's fresh path, in a loop.
    let profile = std::env::args().skip_while(|a| a != "--profile").nth(1);
    let only = std::env::var("GRIDLET_BENCH_ONLY").ok();
    let (rounds, calls) = if quick { (3, 50) } else { (9, 300) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    // No guest pool: the call runs on this thread, as in `serve` (attempts
    // start on the guest pool and call there).
    let runtime = Runtime::new(
        RuntimeSettings {
            guest_threads: 0,
            ..RuntimeSettings::default()
        },
        Arc::new(MemoryKeyValue::default()),
    )
    .expect("rt");
    let temp = tempfile::tempdir().expect("tempdir");
    println!(
        "| language | size KiB | compile ms | load from cache ms | instantiate µs | per event, fresh µs | per event, reused µs | fresh ÷ reused |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for l in &LANGUAGES {
        if profile.as_ref().is_some_and(|p| p != l.name) {
            continue;
        }
        if only.as_ref().is_some_and(|o| o != l.name) {
            continue;
        }
        let wasm = match std::env::var_os("GRIDLET_BENCH_WASM") {
            Some(file) if only.is_some() => PathBuf::from(file),
            _ => root()
                .join("target/plugins")
                .join(format!("{}.wasm", l.plugin)),
        };
        if !wasm.exists() {
            println!(
                "| {} | not built (cargo xtask plugins) | | | | | | |",
                l.name
            );
            continue;
        }
        let bytes = std::fs::read(&wasm).expect("wasm");
        let event_bytes =
            std::fs::read(root().join("examples/events/eventgrid").join(l.event)).expect("event");
        let event: Event = event::parse_document(&event_bytes)
            .expect("event")
            .remove(0);

        // Compiling is seconds for Python and JavaScript: fewer rounds.
        let compile_rounds = if bytes.len() > 1 << 20 { 1 } else { rounds };
        let compile = time(compile_rounds, || runtime.compile(&bytes).expect("compile"));
        let component = runtime.compile(&bytes).expect("compile");
        let cwasm = temp.path().join(format!("{}.cwasm", l.plugin));
        std::fs::write(&cwasm, component.serialize().expect("serialize")).expect("write");
        // SAFETY: written just above by this engine's `serialize`.
        let from_cache = time(rounds, || unsafe {
            Component::deserialize_file(runtime.engine(), &cwasm).expect("deserialize")
        });

        let fresh = load(&runtime, l, &wasm, 0);
        let reused = load(&runtime, l, &wasm, 100_000);
        if profile.as_deref() == Some(l.name) {
            // Only this language's fresh path, long enough for `perf record`.
            rt.block_on(async {
                for _ in 0..20_000 {
                    runtime.invoke(&fresh.version, &event, 1).await;
                }
            });
            return;
        }
        let (instantiate, per_fresh, per_reuse) = rt.block_on(async {
            for p in [&fresh, &reused] {
                let outcome = runtime.invoke(&p.version, &event, 1).await.outcome;
                assert_eq!(outcome, Outcome::Handled, "{}", l.name);
            }
            let mut inst = Vec::new();
            let mut f = Vec::new();
            let mut r = Vec::new();
            // Interleaved rounds: noise hits every variant alike.
            for _ in 0..rounds {
                let t = Instant::now();
                for _ in 0..calls / 5 {
                    let w = WarmInstance::new(&runtime, &fresh.version, "bench", 1).await;
                    drop(w.expect("instantiate"));
                }
                inst.push(t.elapsed() / (calls / 5) as u32);
                let t = Instant::now();
                for _ in 0..calls {
                    runtime.invoke(&fresh.version, &event, 1).await;
                }
                f.push(t.elapsed() / calls as u32);
                let t = Instant::now();
                for _ in 0..calls {
                    runtime.invoke(&reused.version, &event, 1).await;
                }
                r.push(t.elapsed() / calls as u32);
            }
            (median(inst), median(f), median(r))
        });
        println!(
            "| {} | {} | {:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1}× |",
            l.name,
            bytes.len() / 1024,
            ms(compile),
            ms(from_cache),
            us(instantiate),
            us(per_fresh),
            us(per_reuse),
            us(per_fresh) / us(per_reuse)
        );
    }
}
