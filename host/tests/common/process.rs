//! `gridlet serve` as a process, for what only a process shows: its log,
//! its memory, its restarts.

use std::time::{Duration, Instant};

/// `gridlet serve` as a process with JSON logs on stderr (unless `env` sets
/// `GRIDLET_LOG_FORMAT`), over `dir` (its gridlet.toml and plugins written
/// by `common::install`), with `env` on top; its log is read as it comes (a full pipe would stall the server)
/// into the returned buffer. The child, its base URL, its log.
pub async fn serve_logging(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (
    tokio::process::Child,
    String,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridlet"));
    command.arg("serve");
    if !env.iter().any(|(k, _)| *k == "GRIDLET_LOG_FORMAT") {
        command.args(["--log-format", "json"]);
    }
    let mut child = command
        .env("GRIDLET_CONFIG", dir.join("gridlet.toml"))
        .env("GRIDLET_LISTEN", format!("127.0.0.1:{port}"))
        .env("GRIDLET_PLUGINS_DIR", dir.join("plugins"))
        .env("GRIDLET_STATE_DIR", dir.join("state"))
        .env("GRIDLET_SECRET", super::fort::SECRET)
        .env("GRIDLET_JOURNAL_FSYNC", "false")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stderr = child.stderr.take().expect("stderr");
    let kept = log.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            kept.lock()
                .expect("log")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    plugins_loaded(&base).await;
    (child, base, log)
}

/// Wait (up to 2 min: a first run compiles the Python and JavaScript
/// examples) until the host at `base` answers and its start-up scan has
/// loaded the plugins (`/readyz`'s `plugins.loading` is false, whatever
/// else it says: a test may start a host that is not ready).
pub async fn plugins_loaded(base: &str) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let body = match client.get(format!("{base}/readyz")).send().await {
            Ok(r) => r.json::<serde_json::Value>().await.ok(),
            Err(_) => None,
        };
        if body.is_some_and(|b| b["checks"]["plugins"]["loading"] == false) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no server, or its plugins did not load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A process's resident memory, from `/proc/<pid>/status`.
pub fn rss(pid: u32) -> u64 {
    gridlet::plugin::compiler::resident_bytes(pid).expect("VmRSS")
}

/// The text of a served gridlet's `/metrics`.
pub async fn metrics(client: &reqwest::Client, base: &str) -> String {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}
