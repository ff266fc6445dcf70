//! The sandbox: one wasmtime [`Engine`] for every plugin, an
//! [`InstancePre`](wasmtime::component::InstancePre) per plugin version, and
//! a fresh, limited instance per delivery.
//!
//! One module per capability a plugin may import (`logging`, `config`,
//! `keyvalue`, `http`), each owning its state; `store` composes them. The
//! WASI p2 basics every language's runtime imports (clocks, random, stdio,
//! a filesystem with nothing in it, sockets that refuse everything) come
//! from `wasmtime-wasi`, sandboxed in `store`. Guest code runs on a pool of
//! its own (`guests`), never on the host's threads.
//!
//! The hot path is [`Runtime::invoke`], then `Sandbox::fresh`: read them
//! top to bottom.

pub mod activity;
mod bindings;
pub mod config;
mod engine;
mod guests;
mod handler;
pub mod http;
pub mod keyvalue;
pub mod limits;
mod logging;
pub mod outcome;
mod reuse;
mod sandbox;
mod store;
mod version;

pub use activity::{Entry, Level, LogLimits, LogRate, Source};
pub use config::ConfigValues;
pub use http::{
    AllowList, BODY_CHUNK_BYTES, HttpLimits, MAX_AUTHORITY_BYTES, MAX_METHOD_BYTES,
    MAX_PATH_WITH_QUERY_BYTES, NetworkPolicy, OutboundGrant,
};
pub use keyvalue::{JetStreamKeyValue, JournalKeyValue, KeyValue, MemoryKeyValue};
pub use limits::{KV_READ_MIN_BYTES, Limits};
pub use outcome::{Failure, FailureKind, MAX_REASON_BYTES, Outcome};
pub use reuse::{BareCall, WarmInstance};
pub use version::PluginVersion;

use crate::event::Event;
use engine::{EpochTicker, build_engine};
use handler::Handler;
use sandbox::{Call, Sandbox};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use store::PluginState;
use version::Alive;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

/// What a plugin is granted beyond the bare sandbox, by capability (each
/// shared by every delivery of the version).
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Where it may send HTTP requests.
    pub outbound: Arc<OutboundGrant>,
    /// Values it may read through `wasi:config`.
    pub config: Arc<ConfigValues>,
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// The most memory any one plugin may be given (each plugin's
    /// `limits.memory` must fit under it). Sizes the pooling allocator's slots.
    pub max_memory_bytes: usize,
    /// Instances alive at once across all plugins (the pool's size).
    pub max_instances: u32,
    /// Linear memory kept mapped (and zeroed with memset) when a pool slot
    /// is reused, instead of being returned to the kernel and faulted in again.
    pub memory_keep_resident: usize,
    /// Reset only the pages of a slot that were ever written, found with
    /// Linux's `PAGEMAP_SCAN` (kernel 6.7+; ignored where unavailable), so
    /// keeping memory resident costs what was touched, not what was kept.
    /// Without userfaultfd write-protection the kernel counts every private
    /// page as written: a slot's reset copies back each page any instance
    /// in it touched (up to `memory_keep_resident`), not only the last one's.
    pub pagemap_scan: bool,
    /// Meter fuel, so that plugins may set `limits.fuel`.
    pub fuel: bool,
    /// How often the epoch advances: the granularity of deadlines and of
    /// yielding a busy plugin back to the scheduler.
    pub epoch_tick: Duration,
    /// Caps on each delivery's log output.
    pub log_limits: LogLimits,
    /// Timeouts and caps for outbound HTTP.
    pub http: HttpLimits,
    /// Threads guest code runs on, apart from the host's own (default: one
    /// per core but one, at least one: plugins that spin on every core
    /// starve the kernel's own I/O and network work, and with it the
    /// webhook, for hundreds of milliseconds). 0: no threads of its own,
    /// guest code runs on the caller's runtime.
    pub guest_threads: usize,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            max_memory_bytes: 1024 * 1024 * 1024,
            max_instances: 256,
            memory_keep_resident: 1024 * 1024,
            pagemap_scan: true,
            fuel: true,
            epoch_tick: Duration::from_millis(1),
            log_limits: LogLimits::default(),
            http: HttpLimits::default(),
            guest_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1).max(1)),
        }
    }
}

/// Why a component could not become a plugin version.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component (garbage, truncated, or a
    /// core module).
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// The component imports something gridlet does not provide, or does
    /// not export `gridlet:plugin/handler`.
    #[error("does not fit the gridlet:plugin world: {0}")]
    Link(String),
    /// The manifest asks for more than the host allows.
    #[error("{0}")]
    Limits(String),
    /// Compiling failed or went over its caps (memory, time).
    #[error("{0}")]
    Compile(String),
}

/// What one delivery did and how it ended.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// How it ended.
    pub outcome: Outcome,
    /// Log lines, key-value writes and outbound requests, in order.
    pub entries: Vec<Entry>,
    /// Log lines dropped over the per-delivery caps.
    pub dropped_log_lines: u64,
    /// Wall-clock time from the call to its end (waiting for a concurrency
    /// slot not included).
    pub duration: Duration,
    /// Fuel consumed, when the plugin has a fuel limit.
    pub fuel_used: Option<u64>,
}

/// A core module has version 1 in its header; a component has 0x0d.
fn refuse_core_module(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::NotAComponent(
            "this is a core wasm module; build a component (wasm32-wasip2, \
             or `wasm-tools component new`)"
                .into(),
        ));
    }
    Ok(())
}

impl Invocation {
    /// A delivery whose guest task ended without an answer (the pool shut
    /// down, or a host bug panicked): a host failure, retried.
    fn lost(started: Instant, why: &str) -> Self {
        Self {
            outcome: Outcome::Failed(Failure {
                kind: FailureKind::Host,
                message: format!("the delivery's task ended without an answer: {why}"),
            }),
            entries: Vec::new(),
            dropped_log_lines: 0,
            duration: started.elapsed(),
            fuel_used: None,
        }
    }
}

/// The engine, the linker with every capability, and the plugin state store.
pub struct Runtime {
    sandbox: Arc<Sandbox>,
    linker: Linker<PluginState>,
    versions: Arc<AtomicUsize>,
    guests: guests::GuestPool,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Build the engine (pooling allocator, copy-on-write memory images,
    /// epoch interruption) and link every capability.
    pub fn new(settings: RuntimeSettings, kv: Arc<dyn KeyValue>) -> anyhow::Result<Self> {
        let engine = build_engine(&settings)?;

        let mut linker = Linker::new(&engine);
        store::link(&mut linker)?;

        let ticker = EpochTicker::start(engine.clone(), settings.epoch_tick)?;
        let guests = guests::GuestPool::new(settings.guest_threads)?;
        // With guest threads, connections' I/O stays on the runtime that
        // built this one (the host's).
        let io = match settings.guest_threads {
            0 => None,
            _ => tokio::runtime::Handle::try_current().ok(),
        };
        Ok(Self {
            sandbox: Arc::new(Sandbox {
                engine,
                kv,
                settings,
                kept_total: Arc::default(),
                io,
            }),
            linker,
            versions: Arc::default(),
            guests,
            _ticker: ticker,
        })
    }

    /// Plugin versions alive: serving, or still finishing deliveries after
    /// being replaced. A replaced version is freed with its last delivery.
    pub fn versions_alive(&self) -> usize {
        self.versions.load(Ordering::SeqCst)
    }

    /// The engine, for compiling and (de)serialising components.
    pub fn engine(&self) -> &Engine {
        &self.sandbox.engine
    }

    /// The guest pool, where dispatch starts attempts so that a call runs
    /// on the thread it starts on (none: the caller's runtime).
    pub fn guest_pool(&self) -> Option<tokio::runtime::Handle> {
        self.guests.handle()
    }

    /// Its settings.
    pub fn settings(&self) -> &RuntimeSettings {
        &self.sandbox.settings
    }

    /// Compile a component. Slow for large guests (seconds for Python or
    /// JavaScript): call it off the hot path.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        refuse_core_module(bytes)?;
        Component::new(&self.sandbox.engine, bytes)
            .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))
    }

    /// Compile a component to the bytes the compile cache holds (what a
    /// `gridlet compile-plugin` child does).
    pub fn precompile(&self, bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
        refuse_core_module(bytes)?;
        self.sandbox
            .engine
            .precompile_component(bytes)
            .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))
    }

    /// Type-check a component against the linker and the `gridlet:plugin`
    /// world, and make it a version ready to serve.
    pub fn prepare(
        &self,
        name: &str,
        component: &Component,
        limits: Limits,
        grants: Grants,
    ) -> Result<PluginVersion, LoadError> {
        let settings = &self.sandbox.settings;
        if limits.memory_bytes > settings.max_memory_bytes {
            return Err(LoadError::Limits(format!(
                "limits.memory of {} bytes is over this host's maximum of {} bytes",
                limits.memory_bytes, settings.max_memory_bytes
            )));
        }
        if limits.fuel.is_some() && !settings.fuel {
            return Err(LoadError::Limits(
                "limits.fuel is set but this host does not meter fuel".into(),
            ));
        }
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let handler = Handler::new(pre).map_err(LoadError::Link)?;
        Ok(PluginVersion::new(
            name.into(),
            handler,
            limits,
            grants,
            &self.sandbox.settings,
            Alive::new(&self.versions),
            self.sandbox.kept_total.clone(),
        ))
    }

    /// Deliver `event` to `plugin` on a fresh instance (or a kept one, when
    /// it opted into reuse) and report how it went. The call runs on the
    /// guest pool, never on the caller's threads. Never panics and never
    /// fails as a whole: every failure is an [`Outcome`].
    pub async fn invoke(
        &self,
        plugin: &Arc<PluginVersion>,
        event: &Event,
        attempt: u32,
    ) -> Invocation {
        // The plugin's concurrency cap. The semaphore is never closed.
        let _permit = plugin.permits.acquire().await.ok();
        let call = Call::new(event, attempt);
        let started = call.started;
        let (sandbox, plugin) = (self.sandbox.clone(), plugin.clone());
        let run = async move {
            if plugin.limits.reuse_instance > 0 {
                sandbox.reusing(&plugin, call).await
            } else {
                sandbox.fresh(&plugin, call).await
            }
        };
        match self.guests.run(run).await {
            Ok(invocation) => invocation,
            Err(lost) => Invocation::lost(started, &lost),
        }
    }
}
