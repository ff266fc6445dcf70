//! An instance kept across calls. gridlet gives every delivery a fresh
//! instance; a warm instance is the baseline the benchmarks compare that
//! against, and the building block for opt-in instance reuse for guests
//! that are expensive to start (Python, JavaScript).
//!
//! Isolation trade-off: state left in the instance's memory by one call is
//! visible to the next. Only ever reuse an instance for one plugin, never
//! concurrently, and discard it after any failure.

use super::bindings::Plugin;
use super::outcome::DeadlineExceeded;
use super::state::PluginState;
use super::{Invocation, PluginVersion, Runtime, bindings, finish};
use crate::event::Event;
use std::time::Instant;
use wasmtime::Store;

/// One instance of a plugin version, kept for several calls.
pub struct WarmInstance<'a> {
    runtime: &'a Runtime,
    plugin: &'a PluginVersion,
    store: Store<PluginState>,
    instance: Plugin,
}

impl<'a> WarmInstance<'a> {
    /// Instantiate `plugin` once.
    pub async fn new(runtime: &'a Runtime, plugin: &'a PluginVersion) -> wasmtime::Result<Self> {
        let mut store = runtime.store(plugin, "", 0);
        runtime.arm(&mut store, plugin, Instant::now());
        let instance = plugin.pre.instantiate_async(&mut store).await?;
        Ok(Self {
            runtime,
            plugin,
            store,
            instance,
        })
    }

    /// Call `handle` on the kept instance.
    pub async fn invoke(&mut self, event: &Event, attempt: u32) -> Invocation {
        let started = Instant::now();
        self.store
            .data()
            .activity
            .restart(self.runtime.settings.log_limits);
        self.runtime.arm(&mut self.store, self.plugin, started);
        let wit_event = bindings::to_wit(event, attempt);
        let call = self
            .instance
            .gridlet_plugin_handler()
            .call_handle(&mut self.store, &wit_event);
        let limit = self.plugin.limits.deadline + self.runtime.settings.epoch_tick;
        let result = match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(DeadlineExceeded(self.plugin.limits.deadline).into()),
        };
        finish(self.plugin, &self.store, result, started, event, attempt)
    }
}
