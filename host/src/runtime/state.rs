//! What a store holds for one delivery: the WASI context (sandboxed), the
//! grants, the plugin's key-value namespace, the memory limiter and the
//! activity record.

use super::Grants;
use super::activity::Activity;
use super::http::OutboundHttp;
use super::keyvalue::KeyValue;
use super::limits::MemoryLimiter;
use super::logging::CapturedOutput;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The `T` of `Store<T>`.
pub struct PluginState {
    pub(super) plugin: Arc<str>,
    pub(super) grants: Arc<Grants>,
    pub(super) kv: Arc<dyn KeyValue>,
    pub(super) activity: Arc<Activity>,
    pub(super) limiter: MemoryLimiter,
    pub(super) table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHttp,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
}

impl PluginState {
    /// A sandbox with nothing but what `grants` gives: no preopened
    /// directories, no environment, no arguments, no sockets, no name
    /// lookups; stdout and stderr go to the activity log.
    pub(super) fn new(
        plugin: Arc<str>,
        grants: Arc<Grants>,
        kv: Arc<dyn KeyValue>,
        activity: Arc<Activity>,
        memory_bytes: usize,
        http_limits: super::http::HttpLimits,
    ) -> Self {
        let stdout = CapturedOutput::stdout(activity.clone());
        let stderr = CapturedOutput::stderr(activity.clone());
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        let hooks = OutboundHttp {
            grants: grants.clone(),
            limits: http_limits,
            activity: activity.clone(),
        };
        Self {
            plugin,
            grants,
            kv,
            activity,
            limiter: MemoryLimiter::new(memory_bytes),
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks,
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

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
