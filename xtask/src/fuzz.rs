//! `cargo xtask fuzz [--runs N]`: every fuzz target in `fuzz/` for N inputs
//! (default 1,000,000), seeded from the sample events. cargo-fuzz runs on the
//! stable toolchain with `--sanitizer none` (libFuzzer's coverage guidance,
//! no AddressSanitizer: the targets are safe Rust, so a panic is the bug
//! to find). Installed pinned into the tools cache when missing.

use crate::languages::{cargo_tool, tools_dir};
use crate::{cargo, run};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;

const CARGO_FUZZ: &str = "0.13.2";
const TARGETS: [&str; 2] = ["ingest", "filter"];

/// Run every target for the asked number of inputs.
pub fn fuzz(root: &Path, args: &[String]) -> Result<()> {
    let runs: u64 = match args.iter().position(|a| a == "--runs") {
        Some(i) => args
            .get(i + 1)
            .context("--runs needs a number")?
            .parse()
            .context("--runs needs a number")?,
        None => 1_000_000,
    };
    let tools = tools_dir()?;
    let cargo_fuzz = cargo_tool(&tools, "cargo-fuzz", CARGO_FUZZ, "cargo-fuzz")?;
    for target in TARGETS {
        let corpus = root.join("target/fuzz/corpus").join(target);
        seed(root, target, &corpus)?;
        eprintln!("xtask: fuzzing {target} for {runs} inputs (libFuzzer prints its progress)");
        run(Command::new(&cargo_fuzz)
            .current_dir(root.join("fuzz"))
            // cargo-fuzz is a cargo subcommand: its first argument is its name.
            .arg("fuzz")
            .args(["run", "--sanitizer", "none", "--target-dir"])
            .arg(root.join("target/fuzz"))
            .arg(target)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-runs={runs}"))
            .arg("-print_final_stats=1")
            .env("CARGO", cargo()))?;
    }
    eprintln!(
        "xtask: fuzzing done: {} targets × {runs} inputs, no crash",
        TARGETS.len()
    );
    Ok(())
}

/// Seed `corpus` from the sample events (idempotent).
fn seed(root: &Path, target: &str, corpus: &Path) -> Result<()> {
    std::fs::create_dir_all(corpus)?;
    let mut samples = Vec::new();
    for schema in ["eventgrid", "cloudevents"] {
        for entry in std::fs::read_dir(root.join("examples/events").join(schema))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                samples.push((schema, std::fs::read(&path)?));
            }
        }
    }
    let filter = br#"{"includedEventTypes":["Microsoft.MachineLearningServices.RunStatusChanged"],"subjectBeginsWith":"experiments/","advancedFilters":[{"operatorType":"StringIn","key":"data.runStatus","values":["failed"]},{"operatorType":"NumberGreaterThan","key":"data.driftCoefficient","value":0.3}]}"#;
    for (i, (schema, body)) in samples.iter().enumerate() {
        let seed = match target {
            // The first byte picks the header shape (ingest.rs).
            "ingest" => [&[if *schema == "eventgrid" { 0 } else { 3 }][..], body].concat(),
            _ => [&filter[..], &[0], body].concat(),
        };
        std::fs::write(corpus.join(format!("seed-{i}")), seed)?;
    }
    Ok(())
}
