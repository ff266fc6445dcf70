//! The sandbox: one wasmtime [`Engine`] for every plugin, an
//! [`InstancePre`](wasmtime::component::InstancePre) per plugin version, and
//! a fresh, limited instance per delivery.
//!
//! One module per capability a plugin may import (`logging`, `config`,
//! `keyvalue`, `http`); the WASI p2 basics every language's runtime imports
//! (clocks, random, stdio, a filesystem with nothing in it, sockets that
//! refuse everything) come from `wasmtime-wasi`, sandboxed in `state`.
//!
//! The hot path is [`Runtime::invoke`]: read it top to bottom.

pub mod activity;
mod bindings;
pub mod config;
pub mod http;
pub mod keyvalue;
pub mod limits;
mod logging;
pub mod outcome;
mod reuse;
mod store;

pub use activity::{Entry, Level, LogLimits, LogRate, Source};
pub use config::ConfigValues;
pub use http::{AllowList, HttpLimits, NetworkPolicy, OutboundGrant};
pub use keyvalue::{JournalKeyValue, KeyValue, MemoryKeyValue};
pub use limits::Limits;
pub use outcome::{Failure, FailureKind, Outcome};
pub use reuse::{BareCall, WarmInstance};

use crate::event::Event;
use activity::Activity;
use bindings::{HandlerError, PluginPre};
use outcome::DeadlineExceeded;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use store::PluginState;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};

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
    /// Reset only the pages an instance dirtied, found with Linux's
    /// `PAGEMAP_SCAN` (kernel 6.7+; ignored where unavailable), so keeping
    /// memory resident costs what was touched, not what was kept.
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
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            max_memory_bytes: 1024 * 1024 * 1024,
            max_instances: 256,
            memory_keep_resident: 1024 * 1024,
            pagemap_scan: true,
            fuel: true,
            epoch_tick: Duration::from_millis(5),
            log_limits: LogLimits::default(),
            http: HttpLimits::default(),
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
}

/// A compiled plugin, ready to instantiate: one per loaded version.
pub struct PluginVersion {
    name: Arc<str>,
    pre: PluginPre<PluginState>,
    limits: Limits,
    grants: Grants,
    permits: Arc<Semaphore>,
    /// Instances kept for reuse (`limits.reuse_instance`), idle ones only.
    kept: std::sync::Mutex<Vec<WarmInstance>>,
    /// Its identity for logs (name, version, grants, log rate).
    source: Arc<Source>,
    _alive: Alive,
}

/// Counts a version while it exists, so the runtime can tell how many
/// versions (serving, or draining after a swap) hold compiled code.
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PluginVersion {
    /// The plugin's name (its key-value namespace).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Its grants.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// Label this version (its short content hash) in log lines.
    pub fn with_version(mut self, version: &str) -> Self {
        self.source = Arc::new(Source {
            plugin: self.name.clone(),
            version: version.into(),
            config: self.grants.config.clone(),
            rate: LogRate::default(),
        });
        self
    }

    /// Its version label ("" when not labelled).
    pub fn version(&self) -> &str {
        &self.source.version
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<WarmInstance>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
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

/// The engine, the linker with every capability, and the plugin state store.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    kv: Arc<dyn KeyValue>,
    settings: RuntimeSettings,
    versions: Arc<AtomicUsize>,
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
        Ok(Self {
            engine,
            linker,
            kv,
            settings,
            versions: Arc::default(),
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
        &self.engine
    }

    /// Compile a component. Slow for large guests (seconds for Python or
    /// JavaScript): call it off the hot path.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        // A core module has version 1 in its header; a component has 0x0d.
        if bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0] {
            return Err(LoadError::NotAComponent(
                "this is a core wasm module; build a component (wasm32-wasip2, \
                 or `wasm-tools component new`)"
                    .into(),
            ));
        }
        Component::new(&self.engine, bytes).map_err(|e| LoadError::NotAComponent(format!("{e:#}")))
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
        if limits.memory_bytes > self.settings.max_memory_bytes {
            return Err(LoadError::Limits(format!(
                "limits.memory of {} bytes is over this host's maximum of {} bytes",
                limits.memory_bytes, self.settings.max_memory_bytes
            )));
        }
        if limits.fuel.is_some() && !self.settings.fuel {
            return Err(LoadError::Limits(
                "limits.fuel is set but this host does not meter fuel".into(),
            ));
        }
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = PluginPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let name: Arc<str> = name.into();
        Ok(PluginVersion {
            source: Arc::new(Source {
                plugin: name.clone(),
                version: "".into(),
                config: grants.config.clone(),
                rate: LogRate::default(),
            }),
            name,
            pre,
            limits,
            grants,
            permits: Arc::new(Semaphore::new(limits.max_concurrency.max(1) as usize)),
            kept: std::sync::Mutex::default(),
            _alive: Alive::new(&self.versions),
        })
    }

    /// Deliver `event` to `plugin` on a fresh instance and report how it went.
    /// Never panics and never fails as a whole: every failure is an [`Outcome`].
    pub async fn invoke(&self, plugin: &PluginVersion, event: &Event, attempt: u32) -> Invocation {
        // The plugin's concurrency cap. The semaphore is never closed.
        let _permit = plugin.permits.acquire().await.ok();
        if plugin.limits.reuse_instance > 0 {
            return self.invoke_reusing(plugin, event, attempt).await;
        }
        let started = Instant::now();
        let mut store = self.store(plugin, &event.id, attempt);
        self.arm(&mut store, plugin, started);

        let wit_event = bindings::to_wit(event, attempt);
        let call = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            instance
                .gridlet_plugin_handler()
                .call_handle(&mut store, &wit_event)
                .await
        };
        // The epoch check cannot fire while the plugin waits in a host call
        // (an outbound request): the timer covers that.
        let limit = plugin.limits.deadline + self.settings.epoch_tick;
        let result = match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(DeadlineExceeded(plugin.limits.deadline).into()),
        };
        finish(plugin, &store, result, started, event, attempt)
    }

    /// A store for one delivery, with the plugin's sandbox and memory cap.
    fn store(&self, plugin: &PluginVersion, event_id: &str, attempt: u32) -> Store<PluginState> {
        let activity = Activity::new(
            plugin.source.clone(),
            event_id,
            attempt,
            self.settings.log_limits,
        );
        let state = PluginState::new(
            plugin.name.clone(),
            &plugin.grants,
            self.kv.clone(),
            activity,
            plugin.limits.memory_bytes,
            self.settings.http,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
    }

    /// Set the deadline (from `started`) and the fuel for one call.
    fn arm(&self, store: &mut Store<PluginState>, plugin: &PluginVersion, started: Instant) {
        // Check the deadline at every epoch tick, yielding to the scheduler
        // in between so a spinning plugin never starves the others.
        let limit = plugin.limits.deadline;
        let deadline = started + limit;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(DeadlineExceeded(limit).into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        if self.settings.fuel {
            // Without a fuel limit, fuel is effectively unlimited.
            let _ = store.set_fuel(plugin.limits.fuel.unwrap_or(u64::MAX));
        }
    }
}

/// Turn a call's result into an [`Invocation`], logging anything but success.
fn finish(
    plugin: &PluginVersion,
    store: &Store<PluginState>,
    result: wasmtime::Result<Result<(), HandlerError>>,
    started: Instant,
    event: &Event,
    attempt: u32,
) -> Invocation {
    let state = store.data();
    state.flush_output();
    let fuel_used = plugin
        .limits
        .fuel
        .map(|f| f.saturating_sub(store.get_fuel().unwrap_or(0)));
    let (entries, dropped_log_lines) = state.activity.finish();
    // A plugin's reasons may quote its config: redact them like its logs.
    let redact = |why: String| plugin.grants.config.redact(&why).into_owned();
    let outcome = match result {
        Ok(Ok(())) => Outcome::Handled,
        Ok(Err(HandlerError::Retry(why))) => Outcome::Retry(redact(why)),
        Ok(Err(HandlerError::Reject(why))) => Outcome::Reject(redact(why)),
        Err(e) => Outcome::Failed(outcome::classify(&e, &state.limiter, &entries)),
    };
    let duration = started.elapsed();
    match &outcome {
        Outcome::Handled => {
            tracing::debug!(plugin = plugin.name(), event_id = %event.id, attempt, ?duration, "handled")
        }
        other => {
            tracing::warn!(plugin = plugin.name(), event_id = %event.id, attempt, ?duration, outcome = %other, "not handled")
        }
    }
    Invocation {
        outcome,
        entries,
        dropped_log_lines,
        duration,
        fuel_used,
    }
}

/// The engine: pooling allocator, copy-on-write memory images, epoch
/// interruption, optional fuel. Keeping memory resident only pays with
/// `PAGEMAP_SCAN` (otherwise every reuse memsets the whole resident part,
/// which costs more than the page faults it saves: docs/BENCHMARKS.md), so
/// without it memory is not kept resident.
fn build_engine(settings: &RuntimeSettings) -> anyhow::Result<Engine> {
    let engine = |scan: bool| {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(settings.max_instances)
            .total_stacks(settings.max_instances)
            .max_memory_size(settings.max_memory_bytes)
            .table_keep_resident(64 * 1024);
        if scan {
            pool.pagemap_scan(wasmtime::Enabled::Yes)
                .linear_memory_keep_resident(settings.memory_keep_resident);
        }
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(settings.fuel)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        Engine::new(&config)
    };
    if settings.pagemap_scan {
        match engine(true) {
            Ok(engine) => return Ok(engine),
            Err(e) => tracing::info!("PAGEMAP_SCAN unavailable ({e}); not keeping memory resident"),
        }
    }
    Ok(engine(false)?)
}

/// Advances the engine's epoch on a thread of its own until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gridlet-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
