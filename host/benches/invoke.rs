//! Per-event cost of a Rust plugin: gridlet's full path (typed event → WIT
//! values → fresh instance from `InstancePre` → `handle` → drop) against a
//! call into an instance that already exists, measured interleaved in one
//! run so that machine noise hits every variant alike.
//!
//! Run: `cargo xtask plugins && cargo bench -p gridlet --bench invoke`
//! (`-- --quick` for a short run).

use gridlet::event::{self, Event};
use gridlet::plugin::{self, LoadedPlugin, Manifest, PluginGrant};
use gridlet::runtime::{MemoryKeyValue, Outcome, Runtime, RuntimeSettings, WarmInstance};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn setup(settings: RuntimeSettings) -> (Runtime, LoadedPlugin) {
    // No guest pool: the call runs on this thread, as an attempt started
    // on `serve`'s guest pool runs its call on that pool's thread.
    let settings = RuntimeSettings {
        guest_threads: 0,
        ..settings
    };
    let runtime = Runtime::new(settings, Arc::new(MemoryKeyValue::default())).expect("runtime");
    let wasm = root().join("target/plugins/model-promotion.wasm");
    assert!(wasm.exists(), "run `cargo xtask plugins` first");
    let mut grant = PluginGrant::default();
    grant
        .config
        .insert("deploy_url", "https://deploy.example.com/");
    let plugin = plugin::load(&runtime, &wasm, Manifest::default(), &grant, None).expect("plugin");
    (runtime, plugin)
}

/// Median of per-call times over rounds.
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, calls) = if quick { (5, 300) } else { (21, 2_000) };
    let bytes =
        std::fs::read(root().join("examples/events/eventgrid/model-registered-pascalcase.json"))
            .expect("event");
    let event: Event = event::parse_document(&bytes).expect("parses").remove(0);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let (default_rt, plugin) = setup(RuntimeSettings::default());
    // `--profile`: only the fresh path, long enough for `perf record`.
    if std::env::args().any(|a| a == "--profile") {
        rt.block_on(async {
            for _ in 0..200_000 {
                default_rt.invoke(&plugin.version, &event, 1).await;
            }
        });
        return;
    }
    // Pooling variants of the fresh path: (name, keep resident, decommit batch).
    let variants: Vec<(String, Runtime, LoadedPlugin)> = [
        (false, 0),
        (true, 64 * 1024),
        (true, 1024 * 1024),
        (true, 16 * 1024 * 1024),
    ]
    .into_iter()
    .map(|(scan, keep)| {
        let (runtime, plugin) = setup(RuntimeSettings {
            memory_keep_resident: keep,
            pagemap_scan: scan,
            ..RuntimeSettings::default()
        });
        let name = if scan {
            format!("fresh, pagemap scan, {} KiB kept resident", keep / 1024)
        } else {
            "fresh, no memory kept resident (no pagemap scan)".to_string()
        };
        (name, runtime, plugin)
    })
    .collect();
    let (nofuel_rt, nofuel_plugin) = setup(RuntimeSettings {
        fuel: false,
        ..RuntimeSettings::default()
    });

    let mut names = vec![
        "warm call (instance already created)".to_string(),
        "**fresh instance + call (gridlet's path, default settings)**".to_string(),
        "fresh, fuel metering off".to_string(),
        "instantiate only (store + instance, no call)".to_string(),
    ];
    names.extend(variants.iter().map(|(n, _, _)| n.clone()));
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    rt.block_on(async {
        let mut warm = WarmInstance::new(&default_rt, &plugin.version, "warm", 1)
            .await
            .expect("warm");
        let mut fresh: Vec<(&Runtime, &LoadedPlugin)> =
            vec![(&default_rt, &plugin), (&nofuel_rt, &nofuel_plugin)];
        // Warm everything up once.
        for _ in 0..calls {
            assert_eq!(
                warm.invoke(&default_rt, &plugin.version, &event, 1)
                    .await
                    .outcome,
                Outcome::Handled
            );
            for (runtime, plugin) in fresh.iter().chain(
                variants
                    .iter()
                    .map(|(_, r, p)| (r, p))
                    .collect::<Vec<_>>()
                    .iter(),
            ) {
                assert_eq!(
                    runtime.invoke(&plugin.version, &event, 1).await.outcome,
                    Outcome::Handled
                );
            }
        }
        for _ in 0..rounds {
            let t = Instant::now();
            for _ in 0..calls {
                warm.invoke(&default_rt, &plugin.version, &event, 1).await;
            }
            samples[0].push(t.elapsed() / calls);

            let t = Instant::now();
            for _ in 0..calls {
                let instance = WarmInstance::new(&default_rt, &plugin.version, "bench", 1)
                    .await
                    .expect("instance");
                drop(instance);
            }
            samples[3].push(t.elapsed() / calls);

            fresh.truncate(2);
            fresh.extend(variants.iter().map(|(_, r, p)| (r, p)));
            for (i, (runtime, plugin)) in fresh.iter().enumerate() {
                let slot = if i < 2 { i + 1 } else { i + 2 };
                let t = Instant::now();
                for _ in 0..calls {
                    runtime.invoke(&plugin.version, &event, 1).await;
                }
                samples[slot].push(t.elapsed() / calls);
            }
        }
    });

    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    let warm = medians[0];
    println!(
        "plugin: model-promotion (Rust), event: ModelRegistered (stage=staging: reads config, logs, returns ok)"
    );
    println!("{rounds} interleaved rounds of {calls} calls; median per call\n");
    println!("| path | µs per event | × warm call |");
    println!("|---|---:|---:|");
    for (name, d) in names.iter().zip(&medians) {
        println!(
            "| {name} | {:.1} | {:.2} |",
            micros(*d),
            micros(*d) / micros(warm)
        );
    }
}
