//! Invocation cost per event, per guest language: gridlet's full path
//! (typed event → WIT values → fresh instance → `handle` → outcome → drop)
//! against a bare wasmtime call (the same component already instantiated,
//! the same call, the event already in WIT values, nothing armed), with
//! gridlet's opt-in instance reuse in between. Then the same trivial work
//! under Extism, whose plugins take bytes and parse the event themselves.
//! Variants run interleaved, round by round, so noise hits them alike.

use crate::process::Paths;
use anyhow::{Context, Result};
use gridlet::event::{self, Event};
use gridlet::plugin::{self, LoadedPlugin, Manifest, PluginGrant};
use gridlet::runtime::{BareCall, MemoryKeyValue, Outcome, Runtime, RuntimeSettings, WarmInstance};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A guest language's plugin and an event it handles without calling out.
struct Guest {
    language: &'static str,
    plugin: &'static str,
    config: &'static [(&'static str, &'static str)],
    event: &'static str,
    /// Calls per round: slow guests get fewer.
    calls: u32,
}

const GUESTS: [Guest; 5] = [
    Guest {
        language: "Rust (trivial)",
        plugin: "failed-run-alert",
        config: &[("chat_webhook_url", "https://chat.example.com/")],
        event: "run-completed.json",
        calls: 2000,
    },
    Guest {
        language: "Rust",
        plugin: "model-promotion",
        config: &[("deploy_url", "https://deploy.example.com/")],
        event: "model-registered-pascalcase.json",
        calls: 2000,
    },
    Guest {
        language: "C",
        plugin: "audit-counter",
        config: &[],
        event: "run-completed.json",
        calls: 2000,
    },
    Guest {
        language: "Python",
        plugin: "drift-guard",
        config: &[
            ("threshold", "0.99"),
            ("pipeline_url", "https://pipeline.example.com/"),
        ],
        event: "dataset-drift-detected.json",
        calls: 100,
    },
    Guest {
        language: "JavaScript",
        plugin: "deployment-notifier",
        config: &[("chat_webhook_url", "https://chat.example.com/")],
        event: "model-registered.json",
        calls: 300,
    },
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn per_call(elapsed: Duration, calls: u32) -> f64 {
    elapsed.as_secs_f64() * 1e6 / f64::from(calls)
}

fn event_file(paths: &Paths, name: &str) -> std::path::PathBuf {
    paths.root.join("examples/events/eventgrid").join(name)
}

fn load(runtime: &Runtime, paths: &Paths, guest: &Guest) -> Result<LoadedPlugin> {
    let mut grant = PluginGrant::default();
    for (key, value) in guest.config {
        grant.config.insert(*key, *value);
    }
    plugin::load(
        runtime,
        &paths.plugin(guest.plugin),
        Manifest::default(),
        &grant,
        None,
    )
    .with_context(|| format!("{} (run `cargo xtask plugins`)", guest.plugin))
}

/// Median µs per event: (bare wasmtime, gridlet reused, gridlet fresh).
async fn measure(paths: &Paths, guest: &Guest, rounds: usize, quick: bool) -> Result<[f64; 3]> {
    // No guest pool: the call runs on this thread, as in `serve`, where an
    // attempt starts on the guest pool and calls there.
    let runtime = Runtime::new(
        RuntimeSettings {
            guest_threads: 0,
            ..RuntimeSettings::default()
        },
        Arc::new(MemoryKeyValue::default()),
    )?;
    let plugin = load(&runtime, paths, guest)?;
    let bytes = std::fs::read(event_file(paths, guest.event))?;
    let event: Event = event::parse_document(&bytes)?
        .into_iter()
        .next()
        .context("empty event file")?;
    let version = &plugin.version;
    let mut bare = BareCall::new(&runtime, version, &event).await?;
    let mut warm = WarmInstance::new(&runtime, version, &event.id, 1).await?;
    let calls = if quick { guest.calls / 5 } else { guest.calls };
    // Warm up, and check that every path handles the event.
    for _ in 0..calls.min(50) {
        anyhow::ensure!(bare.call().await, "{}: bare call failed", guest.plugin);
        let w = warm.invoke(&runtime, version, &event, 1).await.outcome;
        let f = runtime.invoke(version, &event, 1).await.outcome;
        anyhow::ensure!(
            w == Outcome::Handled && f == Outcome::Handled,
            "{}: {w:?} / {f:?}",
            guest.plugin
        );
    }
    let mut samples: [Vec<f64>; 3] = Default::default();
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..calls {
            bare.call().await;
        }
        samples[0].push(per_call(t.elapsed(), calls));
        let t = Instant::now();
        for _ in 0..calls {
            warm.invoke(&runtime, version, &event, 1).await;
        }
        samples[1].push(per_call(t.elapsed(), calls));
        let t = Instant::now();
        for _ in 0..calls {
            runtime.invoke(version, &event, 1).await;
        }
        samples[2].push(per_call(t.elapsed(), calls));
    }
    Ok(samples.map(median))
}

/// Extism calling the peer plugin on the trivial plugin's event:
/// (kept plugin, fresh plugin from compiled) µs per call.
fn extism(paths: &Paths, rounds: usize, quick: bool) -> Result<(f64, f64)> {
    let out = std::process::Command::new(&paths.extism_host)
        .arg(paths.peer("wasm32-unknown-unknown/release/extism_event.wasm"))
        .arg(event_file(paths, GUESTS[0].event))
        .arg(rounds.to_string())
        .arg(if quick { "400" } else { "2000" })
        .output()
        .with_context(|| {
            format!(
                "{} (`cargo xtask bench` builds it)",
                paths.extism_host.display()
            )
        })?;
    anyhow::ensure!(
        out.status.success(),
        "extism-host: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let series = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default()
    };
    Ok((median(series("kept")), median(series("fresh"))))
}

/// The section's Markdown.
pub async fn run(paths: &Paths, quick: bool) -> Result<String> {
    let rounds = if quick { 5 } else { 15 };
    let mut md = format!(
        "{rounds} interleaved rounds per language; median µs per event.\n\n\
         | language | plugin | bare wasmtime call | gridlet, reused instance | gridlet, fresh instance (default) | fresh ÷ bare | reused ÷ bare |\n\
         |---|---|---:|---:|---:|---:|---:|\n"
    );
    let mut trivial = None;
    for guest in &GUESTS {
        let [bare, reused, fresh] = measure(paths, guest, rounds, quick).await?;
        if trivial.is_none() {
            trivial = Some((bare, fresh));
        }
        let _ = writeln!(
            md,
            "| {} | {} | {bare:.1} | {reused:.1} | {fresh:.1} | {:.1}× | {:.1}× |",
            guest.language,
            guest.plugin,
            fresh / bare,
            reused / bare
        );
    }
    let (bare, fresh) = trivial.unwrap_or_default();
    md.push_str("\nAgainst Extism (1.30, its own wasmtime 43) on the trivial plugin's event:\n\n");
    md.push_str("| path | µs per event | × bare wasmtime call |\n|---|---:|---:|\n");
    let _ = writeln!(
        md,
        "| bare wasmtime call (`failed-run-alert`) | {bare:.1} | 1.0× |"
    );
    let _ = writeln!(
        md,
        "| gridlet, fresh instance per event | {fresh:.1} | {:.1}× |",
        fresh / bare
    );
    match extism(paths, rounds, quick) {
        Ok((kept, new)) => {
            let _ = writeln!(
                md,
                "| Extism, plugin kept across calls | {kept:.1} | {:.1}× |",
                kept / bare
            );
            let _ = writeln!(
                md,
                "| Extism, fresh plugin per call (from `CompiledPlugin`) | {new:.1} | {:.1}× |",
                new / bare
            );
        }
        Err(e) => {
            let _ = writeln!(md, "| Extism | not measured: {e} | |");
        }
    }
    Ok(md)
}
