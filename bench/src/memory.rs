//! Memory: `gridlet serve`'s resident set idle (no plugins), and what each
//! more loaded plugin adds, per guest language: the RSS with 6 copies of a
//! plugin minus the RSS with 1, over 5. Copies are separate plugins (own
//! names, own manifests), loaded from the shared compile cache, so this is
//! the marginal cost of deploying one more plugin once its code is cached.

use crate::process::{Gridlet, Paths, PluginCopy, rss_bytes};
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
    Ok(md)
}
