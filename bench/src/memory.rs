//! Memory: `gridlet serve`'s resident set idle (no plugins), and what each
//! more loaded plugin adds, per guest language: the RSS with 6 copies of a
//! plugin minus the RSS with 1, over 5. Copies are separate plugins (own
//! names, own manifests), loaded from the shared compile cache, so this is
//! the marginal cost of deploying one more plugin once its code is cached.
//! Then what compiling leaves behind (the five examples hot-loaded and
//! compiled in a child, compiled in-process, loaded from the cache) and
//! what 100 large events leave behind once delivered.

use crate::process::{Gridlet, Launch, Paths, PluginCopy, rss_bytes};
use anyhow::Result;
use std::fmt::Write as _;
use std::time::Duration;

const LANGUAGES: [(&str, &str); 4] = [
    ("Rust", "model-promotion"),
    ("C", "audit-counter"),
    ("Python", "drift-guard"),
    ("JavaScript", "deployment-notifier"),
];

const COPIES: usize = 6;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// RSS of a gridlet serving `copies` copies of `plugin` (none for idle),
/// once it is ready and has settled.
async fn rss_with(paths: &Paths, plugin: Option<&str>, copies: usize) -> Result<u64> {
    let wasm = plugin.map(|p| paths.plugin(p));
    let plugins: Vec<PluginCopy> = match &wasm {
        Some(wasm) => (0..copies)
            .map(|i| PluginCopy {
                name: format!("copy-{i}"),
                wasm,
                manifest: "",
            })
            .collect(),
        None => Vec::new(),
    };
    let gridlet = Gridlet::start(paths, &plugins, true).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rss_bytes(gridlet.pid())
}

/// The section's Markdown; `under_load` is the peak RSS the end-to-end
/// section saw.
pub async fn run(paths: &Paths, under_load: Option<u64>) -> Result<String> {
    let idle = rss_with(paths, None, 0).await?;
    let mut md = String::from("| what | RSS MiB |\n|---|---:|\n");
    let _ = writeln!(
        md,
        "| `gridlet serve`, idle, no plugins | {:.1} |",
        mib(idle)
    );
    for (language, plugin) in LANGUAGES {
        // A first start compiles into the shared cache if needed; compiling
        // leaves the allocator holding memory, so it is not measured.
        rss_with(paths, Some(plugin), 1).await?;
        let one = rss_with(paths, Some(plugin), 1).await?;
        let many = rss_with(paths, Some(plugin), COPIES).await?;
        let per = (mib(many) - mib(one)) / (COPIES - 1) as f64;
        let _ = writeln!(
            md,
            "| each more loaded {language} plugin (`{plugin}`) | {per:.2} |"
        );
        let _ = writeln!(
            md,
            "| `gridlet serve` with one {language} plugin | {:.1} |",
            mib(one)
        );
    }
    if let Some(peak) = under_load {
        let _ = writeln!(
            md,
            "| `gridlet serve` under load (peak during the end-to-end runs, one trivial plugin) | {:.1} |",
            mib(peak)
        );
    }
    md.push_str(&compiling(paths).await?);
    md.push_str(&large_events(paths).await?);
    Ok(md)
}

/// The five examples.
const EXAMPLES: [&str; 5] = [
    "failed-run-alert",
    "model-promotion",
    "drift-guard",
    "deployment-notifier",
    "audit-counter",
];

/// RSS of a gridlet that hot-loaded the five examples (started empty, the
/// files dropped in) with `cache` as its compile cache and `config`.
async fn hot_loaded(paths: &Paths, cache: &std::path::Path, config: &str) -> Result<u64> {
    let gridlet = Gridlet::launch(
        paths,
        Launch {
            fsync: true,
            config,
            compile_cache: Some(cache),
            ..Launch::default()
        },
    )
    .await?;
    for name in EXAMPLES {
        gridlet.install(name, &paths.plugin(name))?;
    }
    gridlet.wait_serving(EXAMPLES.len()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rss_bytes(gridlet.pid())
}

/// RSS after hot-loading the five examples: compiled in a child (the
/// default), compiled in the serving process, loaded from the cache.
async fn compiling(paths: &Paths) -> Result<String> {
    eprintln!("bench: memory: hot-loading the five examples three ways");
    let child_cache = tempfile::tempdir()?;
    let in_process_cache = tempfile::tempdir()?;
    let in_child = hot_loaded(paths, child_cache.path(), "").await?;
    let cached = hot_loaded(paths, child_cache.path(), "").await?;
    let in_process = hot_loaded(
        paths,
        in_process_cache.path(),
        "compile_in_process = true\n",
    )
    .await?;
    let mut md = String::new();
    for (what, rss) in [
        (
            "compiled in a child `gridlet compile-plugin` (the default)",
            in_child,
        ),
        (
            "compiled in the serving process (`compile_in_process = true`)",
            in_process,
        ),
        ("loaded from the compile cache", cached),
    ] {
        let _ = writeln!(
            md,
            "| `gridlet serve` after hot-loading the five examples, {what} | {:.1} ({:.2}× from the cache) |",
            mib(rss),
            rss as f64 / cached as f64
        );
    }
    Ok(md)
}

/// RSS before and after 100 events of 3 MiB each, all delivered to one
/// plugin (`audit-counter`, which takes every event).
async fn large_events(paths: &Paths) -> Result<String> {
    eprintln!("bench: memory: 100 events of 3 MiB");
    let wasm = paths.plugin("audit-counter");
    let plugins = [PluginCopy {
        name: "counter".into(),
        wasm: &wasm,
        manifest: "",
    }];
    let gridlet = Gridlet::launch(
        paths,
        Launch {
            plugins: &plugins,
            fsync: true,
            env: &[("GRIDLET_BODY_LIMIT_BYTES", "8388608")],
            ..Launch::default()
        },
    )
    .await?;
    let client = reqwest::Client::new();
    let send = |id: String, data: String| {
        let body = format!(
            r#"[{{"id":"{id}","subject":"s","eventType":"T","eventTime":"2026-11-29T00:00:00Z","data":{data}}}]"#
        );
        let request = client.post(&gridlet.url).body(body);
        async move {
            let r = request.send().await?;
            anyhow::ensure!(r.status().is_success(), "{}", r.status());
            anyhow::Ok(())
        }
    };
    for i in 0..20 {
        send(format!("warm-{i}"), "{}".into()).await?;
    }
    gridlet.drain().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes(gridlet.pid())?;
    let blob = format!(r#"{{"blob":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
    for i in 0..100 {
        send(format!("big-{i}"), blob.clone()).await?;
    }
    gridlet.drain().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_bytes(gridlet.pid())?;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| `gridlet serve` with one plugin, before 100 events of 3 MiB | {:.1} |",
        mib(before)
    );
    let _ = writeln!(
        md,
        "| the same, after all 100 were delivered (300 MiB through) | {:.1} (+{:.1}) |",
        mib(after),
        mib(after.saturating_sub(before))
    );
    Ok(md)
}
