//! Fresh instance against warm call for any components given on the command
//! line, interleaved in one process so that machine noise hits each alike:
//! how much a guest's build (its imports, its allocator, its memory) changes
//! the per-event cost. Used by `bench/experiments/guest-imports.sh`.
//!
//! Run: `cargo bench -p gridlet --bench components -- A.wasm B.wasm ...`

use gridlet::event::{self, Event};
use gridlet::plugin::{self, LoadedPlugin, Manifest, PluginGrant};
use gridlet::runtime::{MemoryKeyValue, Runtime, RuntimeSettings, WarmInstance};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROUNDS: usize = 11;
const CALLS: u32 = 1_000;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

fn main() {
    let files: Vec<PathBuf> = std::env::args()
        .skip(1)
        .filter(|a| a.ends_with(".wasm"))
        .map(PathBuf::from)
        .collect();
    if files.is_empty() {
        eprintln!("usage: cargo bench -p gridlet --bench components -- A.wasm [B.wasm ...]");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bytes =
        std::fs::read(root.join("examples/events/eventgrid/model-registered-pascalcase.json"))
            .expect("event");
    let event: Event = event::parse_document(&bytes).expect("parses").remove(0);
    // No guest pool: the call runs on this thread, as on the pool's.
    let settings = RuntimeSettings {
        guest_threads: 0,
        ..RuntimeSettings::default()
    };
    let runtime = Runtime::new(settings, Arc::new(MemoryKeyValue::default())).expect("runtime");
    let mut grant = PluginGrant::default();
    grant
        .config
        .insert("deploy_url", "https://deploy.example.com/");
    let plugins: Vec<LoadedPlugin> = files
        .iter()
        .map(|f| plugin::load(&runtime, f, Manifest::default(), &grant, None).expect("plugin"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    // Per component: warm call, fresh instance + call, instantiate only.
    let mut samples = vec![[Vec::new(), Vec::new(), Vec::new()]; plugins.len()];
    rt.block_on(async {
        let mut warm = Vec::new();
        for p in &plugins {
            warm.push(
                WarmInstance::new(&runtime, &p.version, "warm", 1)
                    .await
                    .expect("instance"),
            );
        }
        for _ in 0..ROUNDS {
            for (i, p) in plugins.iter().enumerate() {
                let t = Instant::now();
                for _ in 0..CALLS {
                    warm[i].invoke(&runtime, &p.version, &event, 1).await;
                }
                samples[i][0].push(t.elapsed() / CALLS);
                let t = Instant::now();
                for _ in 0..CALLS {
                    runtime.invoke(&p.version, &event, 1).await;
                }
                samples[i][1].push(t.elapsed() / CALLS);
                let t = Instant::now();
                for _ in 0..CALLS {
                    let instance = WarmInstance::new(&runtime, &p.version, "bench", 1)
                        .await
                        .expect("instance");
                    drop(instance);
                }
                samples[i][2].push(t.elapsed() / CALLS);
            }
        }
    });
    println!("{ROUNDS} interleaved rounds of {CALLS} calls; median µs per event\n");
    println!("| component | warm call | fresh instance + call | instantiate only | fresh ÷ warm |");
    println!("|---|---:|---:|---:|---:|");
    for (file, [warm, fresh, instantiate]) in files.iter().zip(samples) {
        let (warm, fresh, instantiate) = (median(warm), median(fresh), median(instantiate));
        println!(
            "| {} | {warm:.1} | {fresh:.1} | {instantiate:.1} | {:.2}× |",
            file.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            fresh / warm
        );
    }
}
