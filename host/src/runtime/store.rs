//! What a store holds for one delivery: each capability's own state, the
//! WASI context (sandboxed) and the resource table they share, and the
//! memory limiter. The store only composes the capabilities (as
//! `wasmtime-wasi`'s `WasiView` does); no capability knows the store.

use super::activity::Activity;
use super::config::ConfigStore;
use super::http::{HttpRuntime, OutboundHttp};
use super::keyvalue::{
    KeyValue, KeyValueCapability, KeyValueView, KvPaces, KvQuota, PluginKeyValue,
};
use super::limits::{Limits, MemoryLimiter};
use super::logging::{CapturedOutput, PluginLog};
use super::{Grants, bindings};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Most resources one delivery may hold at once. Several kinds live in the
/// host outside the plugin's memory cap (header fields, unsent requests and
/// their bodies, each capped to a few KiB), so this bounds what one instance
/// can make the host hold to ≈ 64 MiB; a plugin with 32 requests in flight
/// uses a few hundred.
pub const MAX_HANDLES: usize = 2 * 1024;

/// Most bytes one set of HTTP header fields may hold (wasmtime's accounting:
/// names and values plus their in-memory overhead; ≈ 8–14 KiB of headers on
/// the wire, which is what servers and proxies accept). wasmtime's default
/// (128 KiB) let one delivery make the host hold 2 GiB of fields.
pub const MAX_FIELDS_BYTES: usize = 16 * 1024;

/// What every delivery of one plugin version shares with the others.
#[derive(Clone)]
pub(super) struct Shared {
    /// Outbound connections open at once.
    pub(super) connections: Arc<tokio::sync::Semaphore>,
    /// The paces of key-value reads and writes.
    pub(super) kv_pace: Arc<KvPaces>,
    /// Turns to yield at an epoch tick, one per guest thread: a plugin's
    /// busy instances queue for them, so it holds as many places in the
    /// guest pool's run queue as any other plugin, however many it runs.
    pub(super) busy_turns: Arc<tokio::sync::Semaphore>,
}

/// The `T` of `Store<T>`.
pub struct PluginState {
    pub(super) activity: Arc<Activity>,
    pub(super) limiter: MemoryLimiter,
    table: ResourceTable,
    /// Built on the first WASI call: most plugins never make one (std's
    /// imports are linked but unused), and building it (clocks, a seeded
    /// random generator, the stdio streams) cost ≈ 1 µs of every fresh
    /// instance (docs/BENCHMARKS.md §1).
    wasi: Option<WasiCtx>,
    http: WasiHttpCtx,
    outbound: OutboundHttp,
    config: ConfigStore,
    keyvalue: PluginKeyValue,
    log: PluginLog,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
}

impl PluginState {
    /// A sandbox with nothing but what `grants` gives (see `sandboxed_wasi`
    /// for WASI's part).
    pub(super) fn new(
        plugin: Arc<str>,
        grants: &Grants,
        kv: Arc<dyn KeyValue>,
        activity: Arc<Activity>,
        limits: &Limits,
        http: HttpRuntime,
        shared: Shared,
    ) -> Self {
        let stdout = CapturedOutput::stdout(activity.clone());
        let stderr = CapturedOutput::stderr(activity.clone());
        Self {
            outbound: OutboundHttp::new(
                grants.outbound.clone(),
                http,
                activity.clone(),
                shared.connections,
            ),
            config: ConfigStore(grants.config.clone()),
            keyvalue: PluginKeyValue::new(
                plugin,
                KvQuota {
                    max_keys: limits.kv_keys,
                    max_bytes: limits.kv_bytes,
                },
                shared.kv_pace,
                kv,
                activity.clone(),
            ),
            log: PluginLog(activity.clone()),
            activity,
            limiter: MemoryLimiter::new(limits.memory_bytes),
            table: {
                // Handles a delivery may hold at once (requests, streams,
                // buckets, pollables): a plugin creating them in a loop
                // hits this, not the host's memory.
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_HANDLES);
                table
            },
            wasi: None,
            http: {
                let mut http = WasiHttpCtx::new();
                http.set_field_size_limit(MAX_FIELDS_BYTES);
                http
            },
            stdout,
            stderr,
        }
    }

    /// Log what stdout/stderr left without a final newline.
    pub(super) fn flush_output(&self) {
        self.stdout.flush_partial();
        self.stderr.flush_partial();
    }
}

/// Link every capability a plugin may import.
pub(super) fn link(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    super::http::cap_request_parts(linker)?;
    use bindings::wasi::{config, keyvalue, logging};
    logging::logging::add_to_linker::<_, HasSelf<PluginLog>>(linker, |s| &mut s.log)?;
    config::store::add_to_linker::<_, HasSelf<ConfigStore>>(linker, |s| &mut s.config)?;
    keyvalue::store::add_to_linker::<_, KeyValueCapability>(linker, PluginState::keyvalue)?;
    keyvalue::atomics::add_to_linker::<_, KeyValueCapability>(linker, PluginState::keyvalue)?;
    Ok(())
}

impl PluginState {
    fn keyvalue(&mut self) -> KeyValueView<'_> {
        KeyValueView {
            ctx: &mut self.keyvalue,
            table: &mut self.table,
        }
    }
}

/// The WASI context of a sandbox with nothing but what `grants` gives: no
/// preopened directories, no environment, no arguments, no sockets, no name
/// lookups; stdout and stderr go to the activity log.
fn sandboxed_wasi(stdout: &CapturedOutput, stderr: &CapturedOutput) -> WasiCtx {
    WasiCtx::builder()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .build()
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (stdout, stderr) = (&self.stdout, &self.stderr);
        WasiCtxView {
            ctx: self
                .wasi
                .get_or_insert_with(|| sandboxed_wasi(stdout, stderr)),
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
