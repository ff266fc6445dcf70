//! What the benchmarks that drive `gridlet serve` in its own process share:
//! a folder with the trivial plugin, the server started on it, and a watch
//! on its journal for the deliveries still to do.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// The `gridlet` binary to run: this build's, or another build given in
/// `GRIDLET_BENCH_SERVER` (to compare two builds on the same load).
pub fn server_binary() -> PathBuf {
    std::env::var_os("GRIDLET_BENCH_SERVER").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_gridlet")),
        PathBuf::from,
    )
}

/// `gridlet serve` on `dir` with the trivial Rust plugin (failed-run-alert:
/// RunCompleted matches no filter of its, so it returns ok at once) at
/// `max_concurrency`, fsync on or relaxed, `extra` appended to its
/// gridlet.toml; ready (`/readyz`) when this returns.
pub async fn serve(dir: &Path, port: u16, max_concurrency: u32, fsync: bool, extra: &str) -> Child {
    std::fs::create_dir_all(dir.join("plugins")).expect("plugins");
    std::fs::copy(
        root().join("target/plugins/failed-run-alert.wasm"),
        dir.join("plugins/trivial.wasm"),
    )
    .expect("run `cargo xtask plugins` first");
    std::fs::write(
        dir.join("plugins/trivial.toml"),
        format!("[limits]\nmax_concurrency = {max_concurrency}\n"),
    )
    .expect("manifest");
    // The operator lets the benchmark's plugin run as many at once as it
    // asks, and the queue never refuses a batch.
    std::fs::write(
        dir.join("gridlet.toml"),
        format!("queue_capacity = 10000000\n[plugin_limits]\nmax_concurrency = 1024\n{extra}"),
    )
    .expect("gridlet.toml");
    let child = Command::new(server_binary())
        .arg("serve")
        .current_dir(dir)
        .env("GRIDLET_CONFIG", dir.join("gridlet.toml"))
        .env("GRIDLET_LISTEN", format!("127.0.0.1:{port}"))
        .env("GRIDLET_PLUGINS_DIR", dir.join("plugins"))
        .env("GRIDLET_STATE_DIR", dir.join("state"))
        .env("GRIDLET_SECRET", "bench")
        .env("GRIDLET_JOURNAL_FSYNC", fsync.to_string())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("gridlet serve");
    let client = reqwest::Client::new();
    while client
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

/// The server's journal seen from the load generator, asked only what
/// SQLite answers from the first entry of an index: the load generator
/// shares the machine's two cores with the server, and the counts it used
/// to take every 5 ms (a new connection, then `COUNT(*)` over 65,536
/// events) ran beside the deliveries being measured.
pub struct JournalWatch {
    path: PathBuf,
    conn: Option<rusqlite::Connection>,
}

impl JournalWatch {
    /// Watch the journal of the server whose state is under `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("state/journal.sqlite3"),
            conn: None,
        }
    }

    /// Whether any delivery is still to do (yes while the journal cannot
    /// be read).
    pub fn pending(&mut self) -> bool {
        self.ask("SELECT EXISTS (SELECT 1 FROM deliveries)")
            .is_none_or(|any| any != 0)
    }

    /// Events stored (a count over the table: ask once nothing is pending).
    #[allow(dead_code)] // each benchmark builds this module; only `pull` counts events
    pub fn events(&mut self) -> i64 {
        self.ask("SELECT COUNT(*) FROM events").unwrap_or(0)
    }

    fn ask(&mut self, query: &str) -> Option<i64> {
        if self.conn.is_none() {
            self.conn = rusqlite::Connection::open(&self.path).ok();
        }
        let answer = self.conn.as_ref()?.query_row(query, [], |r| r.get(0));
        if answer.is_err() {
            // Opened before the server made its tables: open again next time.
            self.conn = None;
        }
        answer.ok()
    }
}
