//! `gridlet-bench`: gridlet measured against its peers in one run, every
//! figure next to its baseline, and `docs/BENCHMARKS.md` written from
//! `bench/BENCHMARKS.md.in` with the results. `cargo xtask bench` builds
//! what it needs (plugins, peers, wasmtime-cli, wrk) and runs it all.

mod invoke;
mod load;
mod memory;
mod neighbours;
mod process;
mod scale;
mod serve;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use process::Paths;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(about)]
struct Args {
    /// Fewer rounds and shorter runs.
    #[arg(long)]
    quick: bool,
    /// Where each section's results go (`<section>.md`).
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Sections to run, in order.
    #[arg(value_enum, default_values_t = [Section::All])]
    sections: Vec<Section>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Section {
    /// Per-event cost per language against bare wasmtime and Extism.
    Invoke,
    /// End to end against `wasmtime serve`; batches of 64.
    Serve,
    /// Where gridlet's time goes under load (perf).
    Profile,
    /// Throughput by plugins matching and events per request; a PNG.
    Scale,
    /// A good plugin's latency alone and beside each hostile one.
    Neighbours,
    /// RSS idle, per loaded plugin, under load, after compiling vs from the
    /// cache, after large events.
    Memory,
    /// Write docs/BENCHMARKS.md from the template and the results.
    Report,
    /// Everything above, in order.
    All,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn paths(out: &Path) -> Paths {
    let root = root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let tools = std::env::var_os("GRIDLET_TOOLS_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/gridlet-tools"),
        PathBuf::from,
    );
    Paths {
        gridlet: target.join("release/gridlet"),
        wasmtime: tools.join("bin/wasmtime"),
        extism_host: root.join("target/extism-host/release/extism-host"),
        compile_cache: out.join("compiled"),
        root,
    }
}

fn save(out: &Path, section: &str, md: &str) -> Result<()> {
    std::fs::write(out.join(format!("{section}.md")), md)?;
    println!("\n## {section}\n\n{md}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let out = root().join(&args.out);
    std::fs::create_dir_all(&out)?;
    let paths = paths(&out);
    let all = args.sections.contains(&Section::All);
    let wants = |s: Section| all || args.sections.contains(&s);
    if wants(Section::Invoke) {
        save(
            &out,
            "peers-invoke",
            &invoke::run(&paths, args.quick).await?,
        )?;
    }
    if wants(Section::Serve) {
        let (md, peak) = serve::run(&paths, args.quick).await?;
        save(&out, "peers-serve", &md)?;
        std::fs::write(out.join("rss-under-load"), peak.to_string())?;
    }
    if wants(Section::Profile) {
        let mut md = serve::profile(&paths, 1).await?;
        md.push('\n');
        md.push_str(&serve::profile(&paths, 64).await?);
        save(&out, "profile", &md)?;
    }
    if wants(Section::Scale) {
        let png = paths.root.join("docs/bench-scale.png");
        save(&out, "scale", &scale::run(&paths, args.quick, &png).await?)?;
    }
    if wants(Section::Neighbours) {
        let md = neighbours::run(&paths, args.quick).await?;
        // A run of one row (`GRIDLET_BENCH_ONLY`) is printed, never kept
        // in place of the whole section's table.
        match std::env::var("GRIDLET_BENCH_ONLY") {
            Ok(only) => println!("\n## neighbours (only {only}; not saved)\n\n{md}"),
            Err(_) => save(&out, "neighbours", &md)?,
        }
    }
    if wants(Section::Memory) {
        let peak = std::fs::read_to_string(out.join("rss-under-load"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        save(&out, "memory", &memory::run(&paths, peak).await?)?;
    }
    if wants(Section::Report) {
        let doc = report(&paths, &out)?;
        std::fs::write(paths.root.join("docs/BENCHMARKS.md"), doc)?;
        println!("wrote docs/BENCHMARKS.md");
    }
    Ok(())
}

/// Every `{{name}}` the template may hold besides `{{machine}}`: a
/// section's results, `<out>/<name>.md`.
const FRAGMENTS: [&str; 13] = [
    "peers-invoke",
    "host-invoke",
    "host-languages",
    "peers-serve",
    "host-ingest",
    "host-durable",
    "host-journal",
    "host-pull",
    "scale",
    "host-reload",
    "neighbours",
    "memory",
    "profile",
];

/// The template with `{{machine}}` and every fragment filled in, in one
/// pass over the template (so text inside a fragment is never taken for a
/// placeholder).
fn report(paths: &Paths, out: &Path) -> Result<String> {
    let template = std::fs::read_to_string(paths.root.join("bench/BENCHMARKS.md.in"))
        .context("bench/BENCHMARKS.md.in")?;
    let mut doc = String::with_capacity(template.len() * 2);
    let mut rest = template.as_str();
    while let Some(start) = rest.find("{{") {
        doc.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let name = after.split("}}").next().unwrap_or("");
        let body = if name == "machine" {
            machine(paths, out)
        } else if FRAGMENTS.contains(&name) {
            std::fs::read_to_string(out.join(format!("{name}.md"))).unwrap_or_else(|_| {
                format!("*Not measured in this run (`{name}`): run `cargo xtask bench`.*\n")
            })
        } else {
            anyhow::bail!("bench/BENCHMARKS.md.in: unknown placeholder {{{{{name}}}}}");
        };
        doc.push_str(body.trim_end());
        rest = &after[name.len() + 2..];
    }
    doc.push_str(rest);
    Ok(doc)
}

/// First line of a command's output, or "not found".
fn version_of(program: &Path, arg: &str) -> String {
    std::process::Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "not found".into())
}

/// The machine and the versions under test, and when the newest table was
/// measured (not when this report was written: it can be rewritten from the
/// same tables after a change to the prose).
fn machine(paths: &Paths, out: &Path) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0.0, |kb| kb as f64 / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let lock = std::fs::read_to_string(paths.root.join("Cargo.lock")).unwrap_or_default();
    let wasmtime = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"wasmtime\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .unwrap_or("?")
        .trim_matches('"')
        .to_string();
    let measured = FRAGMENTS
        .iter()
        .filter_map(|name| std::fs::metadata(out.join(format!("{name}.md"))).ok())
        .filter_map(|m| m.modified().ok())
        .max()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(|| "now".to_string(), |d| format!("@{}", d.as_secs()));
    let date = std::process::Command::new("date")
        .args(["-u", "-d", &measured, "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "| | |\n|---|---|\n\
         | newest table measured | {date} |\n\
         | CPU | {model}, {cores} cores (virtualised, shared) |\n\
         | memory | {mem:.0} GiB |\n\
         | kernel | Linux {} |\n\
         | rustc | {} |\n\
         | gridlet's wasmtime | {wasmtime} |\n\
         | wasmtime-cli (`wasmtime serve`) | {} |\n\
         | Extism | 1.30.0 (wasmtime 43), `bench/extism-host` |\n\
         | load generator | {} |",
        kernel.trim(),
        version_of(Path::new("rustc"), "--version"),
        version_of(&paths.wasmtime, "--version"),
        version_of(Path::new("wrk"), "--version"),
    )
}
