//! Hot-reload latency: a new version renamed into the watched folder → the
//! first event handled by it, cold (never compiled) and from the compile
//! cache, per guest language, in one run.
//!
//! Each cold round makes a version no cache has seen by appending a custom
//! section with a fresh nonce to the component (same code, new content
//! hash). Cached rounds alternate between two versions already in the cache
//! on disk (the registry keeps only the serving version in memory, so every
//! swap goes through the cache).
//!
//! Run: `cargo xtask plugins && cargo bench -p gridlet --bench reload`
//! (`-- --quick` for fewer rounds).

use gridlet::dispatch::Verdict;
use gridlet::event::{self, Event};
use gridlet::plugin::cache::content_hash;
use gridlet::plugin::registry::{DEFAULT_MAX_PLUGIN_BYTES, Folder};
use gridlet::plugin::{
    ChildCompiler, Compiler, OperatorGrants, PluginGrant, Registry, WatchSettings, Watcher,
};
use gridlet::runtime::{MemoryKeyValue, Runtime, RuntimeSettings};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A plugin to reload: language, built file, manifest, sample event.
struct Subject {
    language: &'static str,
    wasm: PathBuf,
    config: &'static [(&'static str, &'static str)],
    event: &'static str,
    cold_rounds: usize,
}

fn subjects(quick: bool) -> Vec<Subject> {
    let plugins = root().join("target/plugins");
    let all = vec![
        Subject {
            language: "Rust",
            wasm: plugins.join("model-promotion.wasm"),
            config: &[("deploy_url", "https://deploy.example.com/")],
            event: "model-registered-pascalcase.json",
            cold_rounds: if quick { 3 } else { 10 },
        },
        Subject {
            language: "Python",
            wasm: plugins.join("drift-guard.wasm"),
            config: &[
                ("threshold", "0.9"),
                ("pipeline_url", "https://pipeline.example.com/"),
            ],
            event: "dataset-drift-detected.json",
            cold_rounds: if quick { 1 } else { 3 },
        },
    ];
    all.into_iter()
        .filter(|s| {
            let built = s.wasm.exists();
            if !built {
                eprintln!("{}: {} not built, skipped", s.language, s.wasm.display());
            }
            built
        })
        .collect()
}

/// `bytes` with a custom section `gridlet-bench` holding `nonce`: a new
/// version of the same code.
fn variant(bytes: &[u8], nonce: u64) -> Vec<u8> {
    let name = b"gridlet-bench";
    let payload = nonce.to_le_bytes();
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8); // < 128: one LEB128 byte
    out.extend_from_slice(&section);
    out
}

fn place(dir: &Path, bytes: &[u8]) {
    let tmp = dir.join(".plugin.wasm.partial");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, dir.join("plugin.wasm")).expect("rename");
}

/// Rename `bytes` into place; time until an event is handled by them.
async fn reload(registry: &Registry, dir: &Path, bytes: &[u8], event: &Arc<Event>) -> Duration {
    let hash = content_hash(bytes);
    let started = Instant::now();
    place(dir, bytes);
    let serving = loop {
        if let Some(s) = registry.serving("plugin").filter(|s| s.hash == hash) {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "never loaded");
        tokio::time::sleep(Duration::from_micros(200)).await;
    };
    use gridlet::dispatch::Target;
    let verdict = serving.target.deliver(event.clone(), 1).await;
    assert_eq!(verdict, Verdict::Done, "the new version handles the event");
    started.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = Arc::new(
        Runtime::new(
            RuntimeSettings::default(),
            Arc::new(MemoryKeyValue::default()),
        )
        .expect("runtime"),
    );
    println!(
        "| plugin | size KiB | cold (compile) ms, median | from cache ms, median | cold ÷ cached |\n|---|---:|---:|---:|---:|"
    );
    for s in subjects(quick) {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("plugins");
        std::fs::create_dir_all(&dir).expect("dir");
        let mut grant = PluginGrant::default();
        for (key, value) in s.config {
            grant.config.insert(*key, *value);
        }
        let grants = OperatorGrants::new(
            PluginGrant::default(),
            [("plugin".to_string(), grant)].into_iter().collect(),
        );
        let bytes = std::fs::read(&s.wasm).expect("wasm");
        let event_bytes =
            std::fs::read(root().join("examples/events/eventgrid").join(s.event)).expect("event");
        let event = Arc::new(
            event::parse_document(&event_bytes)
                .expect("event")
                .remove(0),
        );
        let registry = Arc::new(Registry::new(
            runtime.clone(),
            Folder {
                dir: dir.clone(),
                cache_dir: temp.path().join("compiled"),
                max_plugin_bytes: DEFAULT_MAX_PLUGIN_BYTES,
                grants: Arc::new(grants),
                // As `gridlet serve` compiles: in a child process.
                compiler: Compiler::Child(ChildCompiler::new(env!("CARGO_BIN_EXE_gridlet").into())),
            },
        ));
        let _watcher = Watcher::start(registry.clone(), WatchSettings::default()).expect("watch");
        let nonce = rand::random::<u64>();
        let (cold, cached) = rt.block_on(async {
            let mut cold = Vec::new();
            for i in 0..s.cold_rounds {
                let v = variant(&bytes, nonce + i as u64);
                cold.push(reload(&registry, &dir, &v, &event).await);
            }
            // Two versions in the cache: the last two cold ones.
            let a = variant(&bytes, nonce + s.cold_rounds as u64 - 1);
            let b = variant(&bytes, nonce + s.cold_rounds as u64);
            reload(&registry, &dir, &b, &event).await;
            let mut cached = Vec::new();
            for i in 0..if quick { 10 } else { 40 } {
                let v = if i % 2 == 0 { &a } else { &b };
                cached.push(reload(&registry, &dir, v, &event).await);
            }
            (cold, cached)
        });
        let (cold, cached) = (median(cold), median(cached));
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1}× |",
            s.language,
            bytes.len() / 1024,
            ms(cold),
            ms(cached),
            ms(cold) / ms(cached)
        );
    }
    println!(
        "\n(watcher debounce {} ms included; target from cache for Rust: ≤ 50 ms)",
        WatchSettings::default().debounce.as_millis()
    );
}
