//! End to end over loopback, `wrk` as the load for both: `gridlet serve`
//! (journal commit before 200, filters, then a fresh instance of a trivial
//! Rust plugin per event) against `wasmtime serve` running a `wasi:http`
//! component that parses the same event JSON (a fresh instance per
//! request, nothing stored). Then gridlet alone at batches of 64, fsync on
//! and relaxed, and a profile of where gridlet's time goes.

use crate::load::{self, Load};
use crate::process::{Gridlet, Paths, PluginCopy, WasmtimeServe, rss_bytes};
use anyhow::Result;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The trivial plugin's manifest: as many instances at once as the load
/// can use.
pub const TRIVIAL_MANIFEST: &str = "[limits]\nmax_concurrency = 64\n";

/// Connections `wrk` keeps open.
const CONNECTIONS: u32 = 32;

/// One gridlet with the trivial plugin.
pub async fn trivial_gridlet(paths: &Paths, fsync: bool) -> Result<Gridlet> {
    let wasm = paths.plugin("failed-run-alert");
    let plugins = [PluginCopy {
        name: "trivial".into(),
        wasm: &wasm,
        manifest: TRIVIAL_MANIFEST,
    }];
    Gridlet::start(paths, &plugins, fsync).await
}

/// `wrk` against `url` while sampling the peak RSS of `pid`.
pub async fn wrk_sampled(
    url: &str,
    size: usize,
    connections: u32,
    seconds: u32,
    pid: u32,
) -> Result<(Load, u64)> {
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(rss_bytes(pid).unwrap_or(0), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let url = url.to_string();
    let load =
        tokio::task::spawn_blocking(move || load::wrk(&url, size, connections, seconds)).await?;
    done.store(true, Ordering::SeqCst);
    let _ = sampler.await;
    Ok((load?, peak.load(Ordering::SeqCst)))
}

/// A measured row.
struct Row {
    server: String,
    size: usize,
    load: Load,
    /// Events/s until the last delivery was done (gridlet only).
    delivered: Option<f64>,
    rss: u64,
}

async fn gridlet_row(paths: &Paths, size: usize, fsync: bool, seconds: u32) -> Result<Row> {
    let gridlet = trivial_gridlet(paths, fsync).await?;
    let connections = if size == 1 { CONNECTIONS } else { 8 };
    let (load, rss) = wrk_sampled(&gridlet.url, size, connections, seconds, gridlet.pid()).await?;
    let drain = gridlet.drain().await;
    let events = (load.ok as usize * size) as f64;
    Ok(Row {
        server: format!(
            "gridlet serve, fsync {}",
            if fsync { "on" } else { "relaxed" }
        ),
        size,
        load,
        delivered: Some(events / (load.elapsed + drain).as_secs_f64()),
        rss,
    })
}

/// The end-to-end section's Markdown, and the RSS seen under load.
pub async fn run(paths: &Paths, quick: bool) -> Result<(String, u64)> {
    let seconds = if quick { 3 } else { 10 };
    let body = load::batch("probe", 1);
    let component = paths.peer("wasm32-wasip2/release/http_event.wasm");
    let wasmtime = WasmtimeServe::start(paths, &component, &body).await?;
    let (peer_load, peer_rss) =
        wrk_sampled(&wasmtime.url, 1, CONNECTIONS, seconds, wasmtime.pid()).await?;
    drop(wasmtime);
    let peer = Row {
        server: "wasmtime serve (`http-event` component)".into(),
        size: 1,
        load: peer_load,
        delivered: None,
        rss: peer_rss,
    };
    let mut rows = vec![
        peer,
        gridlet_row(paths, 1, true, seconds).await?,
        gridlet_row(paths, 1, false, seconds).await?,
        gridlet_row(paths, 64, true, seconds).await?,
        gridlet_row(paths, 64, false, seconds).await?,
    ];
    let peer_rps = rows[0].load.per_second();
    let mut md = format!(
        "`wrk -t2 -c{CONNECTIONS} -d{seconds}s` for single events (`-c8` for batches of 64), \
         unique event ids per request, server and load generator on the same 2 cores.\n\n\
         | server | events per request | requests/s | × wasmtime serve | p50 ms | p99 ms | events/s acknowledged | events/s delivered (end to end) | non-2xx | peak RSS MiB |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for r in &mut rows {
        let rps = r.load.per_second();
        let _ = writeln!(
            md,
            "| {} | {} | {rps:.0} | {} | {:.2} | {:.2} | {:.0} | {} | {} | {:.0} |",
            r.server,
            r.size,
            if r.size == 1 {
                format!("{:.2}×", rps / peer_rps)
            } else {
                "–".into()
            },
            ms(r.load.p50),
            ms(r.load.p99),
            rps * r.size as f64,
            r.delivered
                .map_or("(in the request)".to_string(), |d| format!("{d:.0}")),
            r.load.failed,
            r.rss as f64 / (1024.0 * 1024.0),
        );
    }
    let durable = rows[3].delivered.unwrap_or(0.0);
    let relaxed = rows[4].delivered.unwrap_or(0.0);
    let _ = writeln!(
        md,
        "\nBatches of 64: fsync relaxed ÷ on = {:.2}× delivered events/s.",
        relaxed / durable
    );
    let under_load = rows[1..].iter().map(|r| r.rss).max().unwrap_or(0);
    Ok((md, under_load))
}

/// Top symbols of gridlet's own process while it takes batches of `size`.
pub async fn profile(paths: &Paths, size: usize) -> Result<String> {
    let gridlet = trivial_gridlet(paths, true).await?;
    let data = tempfile::Builder::new().suffix(".perf").tempfile()?;
    let perf = tokio::process::Command::new("perf")
        .args(["record", "-F", "999", "-g", "-o"])
        .arg(data.path())
        .args(["-p", &gridlet.pid().to_string(), "--", "sleep", "4"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut perf = match perf {
        Ok(p) => p,
        Err(e) => return Ok(format!("not profiled: perf unavailable ({e})\n")),
    };
    let connections = if size == 1 { CONNECTIONS } else { 8 };
    let url = gridlet.url.clone();
    tokio::task::spawn_blocking(move || load::wrk(&url, size, connections, 5)).await??;
    perf.wait().await?;
    let report = std::process::Command::new("perf")
        .args(["report", "--no-children", "--sort", "dso,sym", "-g", "none"])
        .args(["--percent-limit", "0.8", "--stdio", "-i"])
        .arg(data.path())
        .output()?;
    let text = String::from_utf8_lossy(&report.stdout);
    // perf pads the library column to the longest name: squeeze it.
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .take(25)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join("  "))
        .collect();
    Ok(format!(
        "`perf record -F 999 -g -p <gridlet>` for 4 s under batches of {size}, \
         self time, symbols ≥ 0.8 %:\n\n```\n{}\n```\n",
        lines.join("\n")
    ))
}
