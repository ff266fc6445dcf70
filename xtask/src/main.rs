//! `cargo xtask <task>`: the project's build and test tasks.
//!
//! - `plugins`: build every plugin (examples in Rust, Python, JavaScript and
//!   C, and test fixtures), installing pinned guest toolchains when missing,
//!   and lay them out as a plugins folder, `target/plugins/`
//!   (`<name>.wasm` + `<name>.toml`), and `target/test-plugins/`.
//! - `demo`: `plugins`, then `gridlet serve` with the example plugins, a
//!   local sink standing in for the services they call, and the sample
//!   events sent as Event Grid sends them (`--once` to stop after that).
//! - `test`: `plugins`, then every test of the workspace.
//! - `bench`: `plugins`, then every benchmark, writing docs/BENCHMARKS.md
//!   (`--quick` for short runs).
//! - `fuzz`: the fuzz targets (`fuzz/`: webhook parsing, filter evaluation),
//!   each for `--runs N` inputs (default 1,000,000), with cargo-fuzz on the
//!   stable toolchain (no sanitizer); not part of CI.
//! - `lint`: rustfmt and clippy (warnings are errors) over every crate.
//! - `fmt`: rustfmt every crate.

mod bench;
mod fuzz;
mod languages;
mod sdk;

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Rust plugins: (cargo workspace, crate/artifact name, plugin name, output folder).
const RUST_PLUGINS: &[(&str, &str, &str)] = &[
    ("plugins", "failed_run_alert", "failed-run-alert"),
    ("plugins", "model_promotion", "model-promotion"),
];
const RUST_FIXTURES: &[(&str, &str, &str)] = &[
    ("host/tests/guests", "echo", "echo"),
    ("host/tests/guests", "echo_v2", "echo-v2"),
    ("host/tests/guests", "hostile", "hostile"),
    ("host/tests/guests", "command", "command"),
    ("host/tests/guests", "missing_import", "missing-import"),
    ("host/tests/guests", "noop", "noop"),
    ("host/tests/guests", "wrong_signature", "wrong-signature"),
];

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = root()?;
    match task.as_str() {
        "plugins" => plugins(&root),
        "demo" => {
            plugins(&root)?;
            demo(&root, std::env::args().any(|a| a == "--once"))
        }
        "test" => {
            plugins(&root)?;
            languages::nats_server(&root)?;
            // The console's browser tests drive Debian's Chromium.
            languages::debian_packages(
                &["chromium", "chromium-driver"],
                "the console's browser tests",
            )?;
            test(&root)
        }
        "bench" => {
            plugins(&root)?;
            bench::bench(&root, std::env::args().any(|a| a == "--quick"))
        }
        "fuzz" => fuzz::fuzz(&root, &std::env::args().collect::<Vec<_>>()),
        "lint" => lint(&root),
        "fmt" => fmt(&root, false),
        _ => bail!("usage: cargo xtask <plugins|demo|test|bench|fuzz|lint|fmt>"),
    }
}

fn root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest
        .parent()
        .context("xtask has no parent folder")?
        .to_path_buf())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

/// Every test of the host (doc examples are not compiled tests here), then
/// one closing line with the totals across all test binaries.
fn test(root: &Path) -> Result<()> {
    let mut child = Command::new(cargo())
        .current_dir(root)
        .args(["test", "--workspace", "--lib", "--bins", "--tests"])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("cargo test has no stdout")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        // "test result: ok. 12 passed; 0 failed; 0 ignored; ..."
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let words: Vec<&str> = part.split_whitespace().collect();
                match words.as_slice() {
                    [.., n, "passed"] => passed += n.parse::<u64>().unwrap_or(0),
                    [n, "failed"] => failed += n.parse::<u64>().unwrap_or(0),
                    _ => {}
                }
            }
        }
    }
    let status = child.wait()?;
    println!("\ntests: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("cargo test failed with {status}");
    }
    Ok(())
}

/// Build every plugin (Rust, Python, JavaScript, C) and the test fixtures,
/// and lay out the plugins folders. The example Rust plugins are built
/// without WASI (`wasm32-unknown-unknown`, made components by `wasm-tools`):
/// a fresh instance per delivery costs less without std's WASI imports
/// (docs/plugins/rust.md, "A cheaper instance"). The fixtures stay on
/// `wasm32-wasip2`, the SDK's documented default.
fn plugins(root: &Path) -> Result<()> {
    ensure_wasm_target()?;
    let wasm_target = root.join("target/wasm");
    eprintln!("xtask: building host/tests/guests for wasm32-wasip2");
    run(Command::new(cargo())
        .current_dir(root.join("host/tests/guests"))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&wasm_target))?;
    lay_out(
        root,
        &wasm_target.join("wasm32-wasip2/release"),
        RUST_FIXTURES,
        &root.join("target/test-plugins"),
    )?;
    let wasm_tools = languages::wasm_tools()?;
    // The heap's room in the memory an instance starts with.
    without_wasi(
        root,
        ("plugins", None),
        "-C link-arg=--initial-heap=1048576",
        &wasm_tools,
        RUST_PLUGINS,
        &root.join("target/plugins"),
    )?;
    // Start-up memory exactly 3 MiB, so a test can show the SDK's heap
    // never grows it.
    without_wasi(
        root,
        ("host/tests/guests", Some("noop")),
        "-C link-arg=--initial-memory=3145728",
        &wasm_tools,
        &[("host/tests/guests", "noop", "noop-no-wasi")],
        &root.join("target/test-plugins"),
    )?;
    languages::build(root, &root.join("target/plugins"))?;
    sdk::install(root)?;
    eprintln!("xtask: plugins in target/plugins, test fixtures in target/test-plugins");
    Ok(())
}

/// Build a workspace (or one package of it) for wasm32-unknown-unknown
/// with `rustflags`, make each listed artifact a component, and lay them
/// out in `out`. Each build has a target folder of its own: other
/// RUSTFLAGS in a shared one would rebuild everything on every run.
fn without_wasi(
    root: &Path,
    (workspace, package): (&str, Option<&str>),
    rustflags: &str,
    wasm_tools: &Path,
    list: &[(&str, &str, &str)],
    out: &Path,
) -> Result<()> {
    let what = package.unwrap_or(workspace);
    eprintln!("xtask: building {what} for wasm32-unknown-unknown (no WASI imports)");
    let target_dir = root
        .join("target/wasm-no-wasi")
        .join(what.replace('/', "-"));
    let mut build = Command::new(cargo());
    build
        .current_dir(root.join(workspace))
        .env("RUSTFLAGS", rustflags)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .arg("--target-dir")
        .arg(&target_dir);
    if let Some(package) = package {
        build.args(["--package", package]);
    }
    run(&mut build)?;
    let components = target_dir.join("components");
    std::fs::create_dir_all(&components)?;
    for (_, artifact, _) in list {
        let core = target_dir.join(format!("wasm32-unknown-unknown/release/{artifact}.wasm"));
        let component = components.join(format!("{artifact}.wasm"));
        run(Command::new(wasm_tools)
            .args(["component", "new"])
            .arg(&core)
            .arg("-o")
            .arg(&component))?;
    }
    lay_out(root, &components, list, out)
}

/// Copy `<artifact>.wasm` to `<out>/<name>.wasm`, with its manifest if the
/// source folder has `<name>.toml`.
fn lay_out(root: &Path, built: &Path, list: &[(&str, &str, &str)], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    for (workspace, artifact, name) in list {
        let wasm = built.join(format!("{artifact}.wasm"));
        copy_if_changed(&wasm, &out.join(format!("{name}.wasm")))?;
        let manifest = root.join(workspace).join(name).join(format!("{name}.toml"));
        if manifest.exists() {
            copy_if_changed(&manifest, &out.join(format!("{name}.toml")))?;
        }
    }
    Ok(())
}

/// Copy unless the destination already has the same bytes (so a watcher on
/// the folder sees no change for an unchanged plugin).
fn copy_if_changed(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    if std::fs::read(to).ok().as_deref() == Some(bytes.as_slice()) {
        return Ok(());
    }
    // Write then rename, so nothing ever sees a half-written plugin.
    let tmp = to.with_extension("tmp");
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, to)?;
    Ok(())
}

fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("rustup is needed to add the wasm targets")?;
    for target in ["wasm32-wasip2", "wasm32-unknown-unknown"] {
        if !String::from_utf8_lossy(&installed.stdout).contains(target) {
            eprintln!("xtask: adding the {target} target");
            run(Command::new("rustup").args(["target", "add", target]))?;
        }
    }
    Ok(())
}

/// The main job: `gridlet serve` with the example plugins on the embedded
/// defaults (plus a demo secret), a local sink standing in for the chat and
/// deployment services, and the sample events sent the way Event Grid sends
/// them. Serves until Ctrl-C; `--once` stops after the samples.
fn demo(root: &Path, once: bool) -> Result<()> {
    // Cargo's own progress shows: the first build compiles wasmtime.
    eprintln!("xtask: building gridlet (the first time ~10 min on 2 cores: wasmtime)");
    run(Command::new(cargo())
        .current_dir(root)
        .args(["build", "--package", "gridlet"]))?;
    let gridlet = target_dir(root).join("debug/gridlet");
    let (mut sink, sink_addr) = start_sink(&gridlet)?;
    let listen = std::env::var("GRIDLET_DEMO_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    // A fresh journal each run, so the samples are new events, not duplicates.
    let state = root.join("target/demo-state");
    let _ = std::fs::remove_dir_all(&state);
    let secret = "demo-secret";
    // The console at /console signs in with it (the demo listens on loopback).
    let admin_token = "demo-admin-token";
    // The demo's configuration (grants included) is examples/demo.toml;
    // paths in it are relative to the repository.
    let mut serve = Command::new(&gridlet)
        .current_dir(root)
        .args([
            "serve",
            "--config",
            "examples/demo.toml",
            "--listen",
            &listen,
        ])
        .env("GRIDLET_SECRET", secret)
        .env("GRIDLET_ADMIN_TOKEN", admin_token)
        // Compiled plugins outlive the demo's fresh journal: Python and
        // JavaScript compile once, not on every demo.
        .env("GRIDLET_COMPILE_CACHE_DIR", root.join("target/compiled"))
        .env("CHAT_WEBHOOK_URL", format!("http://{sink_addr}/chat"))
        .env("CHAT_WEBHOOK_HOST", &sink_addr)
        .env("DEPLOY_URL", format!("http://{sink_addr}/deploy"))
        .env("DEPLOY_HOST", &sink_addr)
        .env(
            "RETRAIN_PIPELINE_URL",
            format!("http://{sink_addr}/retrain"),
        )
        .env("RETRAIN_PIPELINE_HOST", &sink_addr)
        .spawn()?;
    let result = (|| {
        wait_for_port(&listen, &mut serve)?;
        wait_until_ready(&listen, &mut serve)?;
        let url = format!("http://{listen}/api/events");
        let send = |args: &[&str]| -> Result<()> {
            println!(
                "\n━━━ gridlet send {} --to {url} --secret {secret}",
                args.join(" ")
            );
            run(Command::new(&gridlet)
                .current_dir(root)
                .arg("send")
                .args(args)
                .args(["--to", &url, "--secret", secret]))
        };
        send(&["examples/events/eventgrid/demo.json"])?;
        // The same two events again, as CloudEvents in binary mode: same
        // source and id, so acknowledged and not delivered twice.
        send(&[
            "examples/events/cloudevents/batch.json",
            "--cloudevents",
            "--binary",
        ])?;
        println!(
            "(both were already delivered above: acknowledged as duplicates, not delivered again)"
        );
        // Let the plugins finish before saying so.
        std::thread::sleep(std::time::Duration::from_millis(500));
        println!(
            "\ngridlet is serving {url} with the plugins in target/plugins (secret `{secret}`).\n\
             Send more with: target/debug/gridlet send <events.json> --to {url} --secret {secret}\n\
             The console: http://{listen}/console (admin token `{admin_token}`)"
        );
        if once {
            return Ok(());
        }
        println!("Ctrl-C to stop.");
        serve.wait()?;
        Ok(())
    })();
    let _ = serve.kill();
    let _ = serve.wait();
    let _ = sink.kill();
    let _ = sink.wait();
    result
}

/// Wait until `addr` accepts connections (or the server exits).
fn wait_for_port(addr: &str, server: &mut Child) -> Result<()> {
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if let Some(status) = server.try_wait()? {
            bail!("gridlet serve exited ({status}); is {addr} in use? set GRIDLET_DEMO_LISTEN");
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            bail!("gridlet serve did not listen on {addr} within a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// Wait until `/readyz` at `addr` answers 200: gridlet serves at once and
/// loads its plugins behind it, which on a first run means compiling the
/// Python and JavaScript examples (a minute or so). Samples sent meanwhile
/// would be kept and delivered later; the demo reads better in order.
fn wait_until_ready(addr: &str, server: &mut Child) -> Result<()> {
    const SAY_EVERY: std::time::Duration = std::time::Duration::from_secs(15);
    const GIVE_UP: std::time::Duration = std::time::Duration::from_secs(15 * 60);
    let started = std::time::Instant::now();
    let mut said = std::time::Duration::ZERO;
    while !answers_ready(addr) {
        if let Some(status) = server.try_wait()? {
            bail!("gridlet serve exited ({status}) while loading the plugins");
        }
        let waited = started.elapsed();
        if waited > GIVE_UP {
            bail!("gridlet serve was not ready within {} s", GIVE_UP.as_secs());
        }
        if waited >= said + SAY_EVERY {
            said = waited;
            eprintln!(
                "xtask: gridlet is loading the plugins ({} s; the first run compiles the Python and \
                 JavaScript examples, ~1 min; later runs load them from target/compiled)",
                waited.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Ok(())
}

/// Does `GET /readyz` at `addr` answer 200 within two seconds?
fn answers_ready(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let wait = Some(std::time::Duration::from_secs(2));
    if stream.set_read_timeout(wait).is_err() || stream.set_write_timeout(wait).is_err() {
        return false;
    }
    if write!(stream, "GET /readyz HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_err() {
        return false;
    }
    // "HTTP/1.1 200 OK": the status code is the second word.
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head[9..12] == *b"200"
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Start `gridlet sink` on a free port; returns it and its `host:port`.
fn start_sink(gridlet: &Path) -> Result<(Child, String)> {
    let mut child = Command::new(gridlet)
        .args(["sink", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().context("sink has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().context("sink exited")??;
    let address = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .context("sink did not say where it listens")?
        .to_string();
    println!("{first}");
    // Echo what the sink receives, prefixed, while the demo runs.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            println!("    sink │ {line}");
        }
    });
    Ok((child, address))
}

/// Every crate, host and guests alike.
const CRATE_ROOTS: [&str; 7] = [
    ".",
    "plugins",
    "host/tests/guests",
    "sdk/rust",
    "bench/peers",
    "bench/extism-host",
    "fuzz",
];

fn fmt(root: &Path, check: bool) -> Result<()> {
    for dir in CRATE_ROOTS {
        let mut command = Command::new(cargo());
        command.current_dir(root.join(dir)).args(["fmt", "--all"]);
        if check {
            command.arg("--check");
        }
        run(&mut command)?;
    }
    Ok(())
}

fn lint(root: &Path) -> Result<()> {
    fmt(root, true)?;
    run(Command::new(cargo()).current_dir(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The SDK (through the plugins) on both its targets, which a fresh
    // machine lacks.
    ensure_wasm_target()?;
    for (dir, target) in [
        ("plugins", "wasm32-wasip2"),
        ("plugins", "wasm32-unknown-unknown"),
        ("host/tests/guests", "wasm32-wasip2"),
    ] {
        run(Command::new(cargo())
            .current_dir(root.join(dir))
            .args(["clippy", "--target", target, "--release", "--target-dir"])
            .arg(root.join("target/wasm"))
            .args(["--", "-D", "warnings"]))?;
    }
    Ok(())
}
