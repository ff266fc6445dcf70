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

    /// A test fixture built by `cargo xtask plugins` (`echo`, `hostile`).
    pub fn test_plugin(&self, name: &str) -> PathBuf {
        self.root
            .join("target/test-plugins")
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

/// How to start a `gridlet serve`.
#[derive(Default)]
pub struct Launch<'a> {
    /// Plugins in its folder before it starts.
    pub plugins: &'a [PluginCopy<'a>],
    /// Journal fsync on (else relaxed).
    pub fsync: bool,
    /// More of its gridlet.toml (grants, settings), after
    /// `[plugin_limits]`.
    pub config: &'a str,
    /// A compile cache of its own (else the one shared by the harness).
    pub compile_cache: Option<&'a Path>,
    /// More environment (settings).
    pub env: &'a [(&'a str, &'a str)],
}

/// `gridlet serve` on a fresh journal.
pub struct Gridlet {
    child: Child,
    dir: tempfile::TempDir,
    /// Where it listens (`http://127.0.0.1:port`).
    pub base: String,
    /// Its webhook, secret included.
    pub url: String,
}

/// The admin token every gridlet here is started with.
const ADMIN_TOKEN: &str = "bench-admin";

impl Gridlet {
    /// Start it with `plugins`, fsync on or relaxed, and wait until ready.
    pub async fn start(paths: &Paths, plugins: &[PluginCopy<'_>], fsync: bool) -> Result<Self> {
        Self::launch(
            paths,
            Launch {
                plugins,
                fsync,
                ..Launch::default()
            },
        )
        .await
    }

    /// Start it as `launch` says and wait until ready.
    pub async fn launch(paths: &Paths, launch: Launch<'_>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let folder = dir.path().join("plugins");
        std::fs::create_dir_all(&folder)?;
        for p in launch.plugins {
            std::fs::copy(p.wasm, folder.join(format!("{}.wasm", p.name)))
                .with_context(|| format!("{} (run `cargo xtask plugins`)", p.wasm.display()))?;
            std::fs::write(folder.join(format!("{}.toml", p.name)), p.manifest)?;
        }
        // The operator lets the plugins run as many at once as they ask.
        // The table goes last: the launch's own top-level keys come first.
        let config = dir.path().join("gridlet.toml");
        std::fs::write(
            &config,
            format!(
                "{}\n\n[plugin_limits]\nmax_concurrency = 1024\n",
                launch.config
            ),
        )?;
        let port = free_port()?;
        let child = Command::new(&paths.gridlet)
            .arg("serve")
            .current_dir(dir.path())
            .env("GRIDLET_CONFIG", &config)
            .env("GRIDLET_LISTEN", format!("127.0.0.1:{port}"))
            .env("GRIDLET_PLUGINS_DIR", &folder)
            .env("GRIDLET_STATE_DIR", dir.path().join("state"))
            .env(
                "GRIDLET_COMPILE_CACHE_DIR",
                launch.compile_cache.unwrap_or(&paths.compile_cache),
            )
            .env("GRIDLET_SECRET", "bench")
            .env("GRIDLET_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("GRIDLET_JOURNAL_FSYNC", launch.fsync.to_string())
            .env("GRIDLET_QUEUE_CAPACITY", "100000000")
            .env("RUST_LOG", "error")
            .envs(launch.env.iter().copied())
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
            base,
            dir,
        })
    }

    /// Drop `wasm` into its plugins folder as `name` (copied beside, then
    /// renamed in, as a deployment would): a hot load.
    pub fn install(&self, name: &str, wasm: &Path) -> Result<()> {
        install_into(&self.plugins_folder(), name, wasm)
    }

    /// Its plugins folder.
    pub fn plugins_folder(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// Wait (up to 5 minutes) until `count` plugins serve.
    pub async fn wait_serving(&self, count: usize) -> Result<()> {
        let client = reqwest::Client::new();
        let url = format!("{}/admin/plugins", self.base);
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let text = client
                .get(&url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await?
                .text()
                .await?;
            let list: serde_json::Value = serde_json::from_str(&text)?;
            let serving = list["plugins"]
                .as_array()
                .map_or(0, |p| p.iter().filter(|p| p["state"] == "serving").count());
            if serving >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{serving} of {count} plugins serve: {list}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

/// Drop `wasm` into the plugins `folder` as `name` (copied beside, then
/// renamed in, as a deployment would).
pub fn install_into(folder: &Path, name: &str, wasm: &Path) -> Result<()> {
    let staged = folder.join(format!(".{name}.partial"));
    std::fs::copy(wasm, &staged)
        .with_context(|| format!("{} (run `cargo xtask plugins`)", wasm.display()))?;
    std::fs::rename(&staged, folder.join(format!("{name}.wasm")))?;
    Ok(())
}
