//! Shared test helpers: plugin paths, sample events, a runtime, and a local
//! HTTP server that records what plugins send it.
#![allow(dead_code)] // each test binary uses a different part

pub mod browser;
pub mod entra;
pub mod fort;
pub mod namespace;
pub mod nats;
pub mod process;
pub mod webhook;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use gridlet::event::{self, Event};
use gridlet::plugin::{self, LoadedPlugin, Manifest, OperatorGrants, PluginGrant};
use gridlet::runtime::{
    AllowList, ConfigValues, KeyValue, MemoryKeyValue, NetworkPolicy, Runtime, RuntimeSettings,
};
use std::collections::BTreeMap;
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

/// What the operator grants a test plugin: `config`, the `hosts`, and
/// loopback (where the tests' recorders listen).
pub fn grant(config: &[(&str, &str)], hosts: &[&str]) -> PluginGrant {
    let mut values = ConfigValues::default();
    for (k, v) in config {
        values.insert(*k, *v);
    }
    PluginGrant {
        config: values,
        allowed_hosts: AllowList::parse(hosts).expect("hosts"),
        networks: NetworkPolicy::parse(&["127.0.0.1/32"]).expect("networks"),
        ..PluginGrant::default()
    }
}

/// Operator grants by plugin name; plugins not named get nothing.
pub fn grants(named: Vec<(&str, PluginGrant)>) -> OperatorGrants {
    let named: BTreeMap<String, PluginGrant> =
        named.into_iter().map(|(n, g)| (n.to_string(), g)).collect();
    OperatorGrants::new(PluginGrant::default(), named)
}

/// Put plugin `name` (the built `wasm`) in `dir/plugins` with `manifest`
/// (written first, then the `.wasm` renamed into place), and grant it
/// `grant` — the TOML of its `[plugins.<name>]` section — in
/// `dir/gridlet.toml`, which also lets plugins reach loopback.
pub fn install(dir: &Path, name: &str, wasm: &str, manifest: &str, grant: &str) {
    let config = dir.join("gridlet.toml");
    let mut operator = std::fs::read_to_string(&config)
        .unwrap_or_else(|_| "allow_private_networks = [\"127.0.0.1/32\"]\n".into());
    operator.push_str(&format!("[plugins.{name}]\n{grant}\n"));
    std::fs::write(&config, operator).expect("gridlet.toml");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::write(plugins.join(format!("{name}.toml")), manifest).expect("manifest");
    let tmp = plugins.join(format!(".{name}.partial"));
    std::fs::copy(plugin_path(wasm), &tmp).expect("copy");
    std::fs::rename(&tmp, plugins.join(format!("{name}.wasm"))).expect("rename");
}

/// The `[plugins.<name>]` TOML granting echo a `sink` to post to.
pub fn echo_grant(sink: &Recorder, name: &str) -> String {
    format!(
        "allowed_hosts = [\"{}\"]\nconfig = {{ name = \"{name}\", sink_url = \"{}\" }}",
        sink.host(),
        sink.url("/echo")
    )
}

/// Load `name` with manifest text, granted `grant`.
pub fn load(runtime: &Runtime, name: &str, manifest: &str, grant: &PluginGrant) -> LoadedPlugin {
    let manifest = Manifest::parse(manifest, Path::new("test.toml")).expect("manifest parses");
    plugin::load(runtime, &plugin_path(name), manifest, grant, None).expect("plugin loads")
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
    at_once: Arc<AtOnce>,
}

/// Requests being answered now, and the most there ever were.
#[derive(Default)]
struct AtOnce {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
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
        let at_once = Arc::new(AtOnce::default());
        let state = (
            received.clone(),
            status.clone(),
            reply.clone(),
            at_once.clone(),
        );
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
            at_once,
        }
    }

    /// The most requests it was answering at once.
    pub fn most_at_once(&self) -> usize {
        self.at_once.most.load(Ordering::SeqCst)
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

type RecorderState = (
    Arc<Mutex<Vec<Received>>>,
    Arc<AtomicU16>,
    Arc<Mutex<Reply>>,
    Arc<AtOnce>,
);

async fn handle(
    State((received, status, reply, at_once)): State<RecorderState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Vec<u8>) {
    // The answer is fixed before the request is counted: a test that sees
    // request N in `received()` and then changes the answer changes it for
    // request N+1 on, never for N.
    let status = StatusCode::from_u16(status.load(Ordering::SeqCst)).expect("status");
    let reply = reply.lock().expect("lock").clone();
    received.lock().expect("lock").push(Received {
        method: method.to_string(),
        path: uri.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let now = at_once.now.fetch_add(1, Ordering::SeqCst) + 1;
    at_once.most.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(reply.delay).await;
    at_once.now.fetch_sub(1, Ordering::SeqCst);
    (status, reply.body)
}
