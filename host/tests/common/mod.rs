//! Shared test helpers: plugin paths, sample events, a runtime, and a local
//! HTTP server that records what plugins send it.
#![allow(dead_code)] // each test binary uses a different part

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use gridlet::event::{self, Event};
use gridlet::plugin::{self, LoadedPlugin, Manifest};
use gridlet::runtime::{KeyValue, MemoryKeyValue, Runtime, RuntimeSettings};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A built plugin: `target/plugins/<name>.wasm` or `target/test-plugins/<name>.wasm`.
pub fn plugin_path(name: &str) -> PathBuf {
    for folder in ["target/plugins", "target/test-plugins"] {
        let path = root().join(folder).join(format!("{name}.wasm"));
        if path.exists() {
            return path;
        }
    }
    panic!("plugin {name} is not built: run `cargo xtask plugins` (or `cargo xtask test`)");
}

/// The events in `examples/events/<file>`.
pub fn events(file: &str) -> Vec<Event> {
    let bytes =
        std::fs::read(root().join("examples/events").join(file)).expect("sample event file");
    event::parse_document(&bytes).expect("sample events parse")
}

/// The one event in `examples/events/<file>`.
pub fn event(file: &str) -> Event {
    let mut all = events(file);
    assert_eq!(all.len(), 1, "{file} holds one event");
    all.remove(0)
}

/// A runtime with in-memory state.
pub fn runtime() -> Runtime {
    runtime_with(Arc::new(MemoryKeyValue::default()))
}

/// A runtime over the given state.
pub fn runtime_with(kv: Arc<dyn KeyValue>) -> Runtime {
    Runtime::new(RuntimeSettings::default(), kv).expect("runtime starts")
}

/// A runtime with other settings.
pub fn runtime_settings(settings: RuntimeSettings) -> Runtime {
    Runtime::new(settings, Arc::new(MemoryKeyValue::default())).expect("runtime starts")
}

/// Load `name` with manifest text (`${ENV}` looked up in `env`).
pub fn load(runtime: &Runtime, name: &str, manifest: &str, env: &[(&str, &str)]) -> LoadedPlugin {
    let lookup = |k: &str| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    let manifest =
        Manifest::parse(manifest, Path::new("test.toml"), &lookup).expect("manifest parses");
    plugin::load(runtime, &plugin_path(name), manifest, None).expect("plugin loads")
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("request body is JSON")
    }
}

/// A local HTTP server that records requests and answers `status`.
#[derive(Clone)]
pub struct Recorder {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    reply: Arc<Mutex<Reply>>,
}

/// What the recorder answers besides the status.
#[derive(Clone, Default)]
struct Reply {
    body: Vec<u8>,
    delay: std::time::Duration,
}

impl Recorder {
    /// Start on an ephemeral loopback port.
    pub async fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let reply = Arc::new(Mutex::new(Reply::default()));
        let state = (received.clone(), status.clone(), reply.clone());
        let app = axum::Router::new().fallback(handle).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("recorder serves");
        });
        Self {
            addr,
            received,
            status,
            reply,
        }
    }

    /// Answer later requests with this body.
    pub fn answer_body(&self, body: Vec<u8>) {
        self.reply.lock().expect("lock").body = body;
    }

    /// Answer later requests only after this long.
    pub fn answer_after(&self, delay: std::time::Duration) {
        self.reply.lock().expect("lock").delay = delay;
    }

    /// Answer every later request with `status`.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `127.0.0.1:PORT`, for allow-lists.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

type RecorderState = (Arc<Mutex<Vec<Received>>>, Arc<AtomicU16>, Arc<Mutex<Reply>>);

async fn handle(
    State((received, status, reply)): State<RecorderState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    received.lock().expect("lock").push(Received {
        method: method.to_string(),
        path: uri.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reply = reply.lock().expect("lock").clone();
    tokio::time::sleep(reply.delay).await;
    let status = StatusCode::from_u16(status.load(Ordering::SeqCst)).expect("status");
    (status, reply.body)
}
