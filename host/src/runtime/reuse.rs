//! Instances kept across deliveries, for plugins that opt in with
//! `limits.reuse_instance = N`: guests that are expensive to start (Python
//! and JavaScript spend ~1 ms building their runtime in every new instance)
//! pay that once per N deliveries instead of once per delivery. Also the
//! warm baseline the benchmarks compare the fresh path against.
//!
//! Isolation trade-off: whatever one delivery leaves in the instance's memory
//! (globals, caches, a half-updated structure) is visible to the next
//! deliveries *of the same plugin version*. Never across plugins or
//! versions, never two deliveries at once, and an instance is discarded
//! after any delivery that did not end in `ok` (a retry, a reject, a trap, a
//! limit) or after N deliveries, whichever comes first.

use super::bindings::Plugin;
use super::outcome::DeadlineExceeded;
use super::store::PluginState;
use super::{Invocation, Outcome, PluginVersion, Runtime, bindings, finish};
use crate::event::Event;
use std::time::Instant;
use wasmtime::{Store, UpdateDeadline};

/// One instance of a plugin version, kept for several calls. Use it only
/// with the runtime and version it was made with.
pub struct WarmInstance {
    store: Store<PluginState>,
    instance: Plugin,
    uses: u32,
}

impl WarmInstance {
    /// Instantiate `plugin` once, for a first delivery of `event_id`.
    pub async fn new(
        runtime: &Runtime,
        plugin: &PluginVersion,
        event_id: &str,
        attempt: u32,
    ) -> Result<Self, wasmtime::Error> {
        let (store, instance) = Self::start(runtime, plugin, event_id, attempt).await;
        Ok(Self {
            store,
            instance: instance?,
            uses: 0,
        })
    }

    /// A store armed for `plugin` and an instance in it; the store comes
    /// back even when instantiating fails, to report how it failed.
    async fn start(
        runtime: &Runtime,
        plugin: &PluginVersion,
        event_id: &str,
        attempt: u32,
    ) -> (Store<PluginState>, wasmtime::Result<Plugin>) {
        let mut store = runtime.store(plugin, event_id, attempt);
        runtime.arm(&mut store, plugin, Instant::now());
        let instance = plugin.pre.instantiate_async(&mut store).await;
        (store, instance)
    }

    /// Call `handle` on the kept instance.
    pub async fn invoke(
        &mut self,
        runtime: &Runtime,
        plugin: &PluginVersion,
        event: &Event,
        attempt: u32,
    ) -> Invocation {
        let started = Instant::now();
        self.uses += 1;
        self.store
            .data()
            .activity
            .restart(runtime.settings.log_limits, &event.id, attempt);
        runtime.arm(&mut self.store, plugin, started);
        let wit_event = bindings::to_wit(event, attempt);
        let call = self
            .instance
            .gridlet_plugin_handler()
            .call_handle(&mut self.store, &wit_event);
        let limit = plugin.limits.deadline + runtime.settings.epoch_tick;
        let result = match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => Err(DeadlineExceeded(plugin.limits.deadline).into()),
        };
        finish(plugin, &self.store, result, started, event, attempt)
    }
}

/// The bare wasmtime baseline the peer benchmarks compare gridlet's path
/// against: one instance made once, the event converted to WIT values once,
/// and each call only `handle` — no deadline or fuel to arm, no log record
/// to reset, no outcome to classify. Not a delivery path.
pub struct BareCall {
    warm: WarmInstance,
    event: bindings::WitEvent,
}

impl BareCall {
    /// Instantiate `plugin` and convert `event` for calls that never expire.
    pub async fn new(
        runtime: &Runtime,
        plugin: &PluginVersion,
        event: &Event,
    ) -> Result<Self, wasmtime::Error> {
        let mut warm = WarmInstance::new(runtime, plugin, &event.id, 1).await?;
        warm.store
            .epoch_deadline_callback(|_| Ok(UpdateDeadline::Continue(u64::MAX / 2)));
        Ok(Self {
            warm,
            event: bindings::to_wit(event, 1),
        })
    }

    /// Call `handle` once; `true` when the plugin answered `ok`.
    pub async fn call(&mut self) -> bool {
        let warm = &mut self.warm;
        matches!(
            warm.instance
                .gridlet_plugin_handler()
                .call_handle(&mut warm.store, &self.event)
                .await,
            Ok(Ok(()))
        )
    }
}

impl Runtime {
    /// Deliver on one of the version's kept instances (or a new one), and
    /// keep it for the next delivery only if this one ended in `ok` and it
    /// has uses left. The caller holds a concurrency permit.
    pub(super) async fn invoke_reusing(
        &self,
        plugin: &PluginVersion,
        event: &Event,
        attempt: u32,
    ) -> Invocation {
        let kept = plugin.kept().pop();
        let mut warm = match kept {
            Some(warm) => warm,
            None => {
                let started = Instant::now();
                let (store, instance) = WarmInstance::start(self, plugin, &event.id, attempt).await;
                match instance {
                    Ok(instance) => WarmInstance {
                        store,
                        instance,
                        uses: 0,
                    },
                    Err(e) => return finish(plugin, &store, Err(e), started, event, attempt),
                }
            }
        };
        let invocation = warm.invoke(self, plugin, event, attempt).await;
        if invocation.outcome == Outcome::Handled && warm.uses < plugin.limits.reuse_instance {
            plugin.kept().push(warm);
        }
        invocation
    }
}
