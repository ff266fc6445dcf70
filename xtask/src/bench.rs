//! `cargo xtask bench [--quick]`: every benchmark docs/BENCHMARKS.md reports,
//! in one run, and the document written from the results. Installs what the
//! peers need when missing: wrk, perf and a font (Debian), wasmtime-cli at
//! gridlet's wasmtime version (cargo, cached like the other tools), the
//! wasm32-unknown-unknown target (the Extism plugin).

use crate::languages::{cargo_tool, debian_packages, tools_dir};
use crate::{cargo, run};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;

/// wasmtime-cli for `wasmtime serve`: the version of gridlet's wasmtime.
const WASMTIME_CLI: &str = "48.0.8";

/// The host's own benchmarks (`host/benches`), each printing its tables.
const HOST_BENCHES: [&str; 7] = [
    "invoke",
    "languages",
    "reload",
    "ingest",
    "durable",
    "journal",
    "pull",
];

pub fn bench(root: &Path, quick: bool) -> Result<()> {
    debian_packages(
        &["wrk", "linux-perf", "fonts-dejavu-core"],
        "the benchmarks",
    )?;
    cargo_tool(&tools_dir()?, "wasmtime-cli", WASMTIME_CLI, "wasmtime")?;
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("rustup")?;
    if !String::from_utf8_lossy(&targets.stdout).contains("wasm32-unknown-unknown") {
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    // Cargo's own progress shows for these builds: the first one compiles
    // a second wasmtime (the Extism host's) and takes minutes.
    eprintln!(
        "xtask: building the peers (a wasi:http component, an Extism plugin, the Extism host: \
         ~10 min the first time)"
    );
    let peers = root.join("target/bench-peers");
    for (krate, target) in [
        ("http-event", "wasm32-wasip2"),
        ("extism-event", "wasm32-unknown-unknown"),
    ] {
        run(Command::new(cargo())
            .current_dir(root.join("bench/peers"))
            .args(["build", "--locked", "--release", "-p", krate])
            .args(["--target", target])
            .arg("--target-dir")
            .arg(&peers)
            .env_remove("CARGO_TARGET_DIR"))?;
    }
    run(Command::new(cargo())
        .current_dir(root.join("bench/extism-host"))
        .args(["build", "--locked", "--release", "--target-dir"])
        .arg(root.join("target/extism-host"))
        .env_remove("CARGO_TARGET_DIR"))?;
    eprintln!("xtask: building gridlet and the peer harness (release)");
    run(Command::new(cargo()).current_dir(root).args([
        "build",
        "--release",
        "-p",
        "gridlet",
        "-p",
        "gridlet-bench",
    ]))?;

    let out = root.join("target/bench");
    std::fs::create_dir_all(&out)?;
    // Build them first with cargo's progress showing (minutes the first
    // time); each run below only captures the tables.
    eprintln!("xtask: building the host's benchmarks");
    run(Command::new(cargo())
        .current_dir(root)
        .args(["bench", "--no-run", "-p", "gridlet"]))?;
    for name in HOST_BENCHES {
        eprintln!("xtask: cargo bench --bench {name}");
        let mut command = Command::new(cargo());
        command
            .current_dir(root)
            .args(["bench", "--quiet", "-p", "gridlet", "--bench", name]);
        if quick {
            command.args(["--", "--quick"]);
        }
        let output = command.output()?;
        anyhow::ensure!(
            output.status.success(),
            "bench {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout);
        print!("{text}");
        std::fs::write(out.join(format!("host-{name}.md")), text.as_bytes())?;
    }
    let mut harness = Command::new(cargo());
    harness
        .current_dir(root)
        .args(["run", "--quiet", "--release", "-p", "gridlet-bench", "--"]);
    if quick {
        harness.arg("--quick");
    }
    run(harness.arg("all"))
}
