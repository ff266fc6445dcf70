//! The servers under test, each in its own process: `gridlet serve` on a
//! fresh state folder with a chosen set of plugins, and `wasmtime serve`
//! with the peer component. Both are killed when dropped.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Where the harness finds what it runs (see `cargo xtask bench`).
#[derive(Debug, Clone)]
pub struct Paths {
    /// The repository.
    pub root: PathBuf,
    /// The release `gridlet` binary.
    pub gridlet: PathBuf,
    /// `wasmtime` (wasmtime-cli, same version as gridlet's wasmtime).
    pub wasmtime: PathBuf,
    /// The Extism peer's host binary.
    pub extism_host: PathBuf,
    /// Compile cache shared by every gridlet started here.
    pub compile_cache: PathBuf,
}

impl Paths {
    /// A plugin built by `cargo xtask plugins`.
    pub fn plugin(&self, name: &str) -> PathBuf {
        self.root
            .join("target/plugins")
            .join(format!("{name}.wasm"))
    }

    /// A peer guest built by `cargo xtask bench`.
    pub fn peer(&self, file: &str) -> PathBuf {
        self.root.join("target/bench-peers").join(file)
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Resident set size of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .context("no VmRSS")
}

/// One plugin copy in a gridlet plugins folder.
pub struct PluginCopy<'a> {
    /// File name stem in the folder.
    pub name: String,
    /// The component.
    pub wasm: &'a Path,
    /// Its manifest.
    pub manifest: &'a str,
}

/// `gridlet serve` on a fresh journal.
pub struct Gridlet {
    child: Child,
    dir: tempfile::TempDir,
    /// Its webhook, secret included.
    pub url: String,
}

impl Gridlet {
    /// Start it with `plugins`, fsync on or relaxed, and wait until ready.
    pub async fn start(paths: &Paths, plugins: &[PluginCopy<'_>], fsync: bool) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let folder = dir.path().join("plugins");
        std::fs::create_dir_all(&folder)?;
        for p in plugins {
            std::fs::copy(p.wasm, folder.join(format!("{}.wasm", p.name)))
                .with_context(|| format!("{} (run `cargo xtask plugins`)", p.wasm.display()))?;
            std::fs::write(folder.join(format!("{}.toml", p.name)), p.manifest)?;
        }
        // The operator lets the plugins run as many at once as they ask.
        let config = dir.path().join("gridlet.toml");
        std::fs::write(&config, "[plugin_limits]\nmax_concurrency = 1024\n")?;
        let port = free_port()?;
        let child = Command::new(&paths.gridlet)
            .arg("serve")
            .current_dir(dir.path())
            .env("GRIDLET_CONFIG", &config)
            .env("GRIDLET_LISTEN", format!("127.0.0.1:{port}"))
            .env("GRIDLET_PLUGINS_DIR", &folder)
            .env("GRIDLET_STATE_DIR", dir.path().join("state"))
            .env("GRIDLET_COMPILE_CACHE_DIR", &paths.compile_cache)
            .env("GRIDLET_SECRET", "bench")
            .env("GRIDLET_JOURNAL_FSYNC", fsync.to_string())
            .env("GRIDLET_QUEUE_CAPACITY", "100000000")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "{} (build it: `cargo build --release`)",
                    paths.gridlet.display()
                )
            })?;
        let base = format!("http://127.0.0.1:{port}");
        wait_until(|| async {
            reqwest::get(format!("{base}/readyz"))
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await
        .context("gridlet serve did not become ready")?;
        Ok(Self {
            child,
            url: format!("{base}/api/events?code=bench"),
            dir,
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Deliveries in the journal not yet done.
    pub fn pending(&self) -> i64 {
        let path = self.dir.path().join("state/journal.sqlite3");
        rusqlite::Connection::open(path)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0)))
            .unwrap_or(i64::MAX)
    }

    /// Wait until every delivery is done; how long that took.
    pub async fn drain(&self) -> Duration {
        let started = Instant::now();
        while self.pending() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        started.elapsed()
    }
}

/// `wasmtime serve` with a `wasi:http` component, default settings plus
/// `-Scli`.
pub struct WasmtimeServe {
    child: Child,
    /// Where to POST.
    pub url: String,
}

impl WasmtimeServe {
    /// Start it and wait until it answers a POST.
    pub async fn start(paths: &Paths, component: &Path, body: &str) -> Result<Self> {
        if !paths.wasmtime.exists() {
            bail!(
                "{} missing: `cargo xtask bench` installs wasmtime-cli",
                paths.wasmtime.display()
            );
        }
        let port = free_port()?;
        let child = Command::new(&paths.wasmtime)
            .arg("serve")
            // The component is Rust std: it imports wasi:cli (environment).
            .arg("-Scli")
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg(component)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}/api/events");
        let client = reqwest::Client::new();
        wait_until(|| async {
            client
                .post(&url)
                .body(body.to_string())
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await
        .context("wasmtime serve did not answer")?;
        Ok(Self { child, url })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

/// Poll `ready` every 20 ms for up to 60 s.
async fn wait_until<F, Fut>(mut ready: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready().await {
        if Instant::now() > deadline {
            bail!("timed out");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
