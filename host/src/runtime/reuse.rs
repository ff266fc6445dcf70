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

use super::sandbox::{Call, Sandbox, finish};
use super::store::PluginState;
use super::{Invocation, Outcome, PluginVersion, Runtime};
use super::{bindings, handler};
use crate::event::Event;
use std::sync::atomic::Ordering;
use std::time::Instant;
use wasmtime::component::Instance;
use wasmtime::{Store, UpdateDeadline};

/// One instance of a plugin version, kept for several calls. Use it only
/// with the runtime and version it was made with.
pub struct WarmInstance {
    store: Store<PluginState>,
    instance: Instance,
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
        let (store, instance) =
            Self::start(&runtime.sandbox, plugin, event_id, attempt, Instant::now()).await;
        Ok(Self {
            store,
            instance: instance?,
            uses: 0,
        })
    }

    /// A store armed for `plugin` and an instance in it; the store comes
    /// back even when instantiating fails, to report how it failed.
    async fn start(
        sandbox: &Sandbox,
        plugin: &PluginVersion,
        event_id: &str,
        attempt: u32,
        started: Instant,
    ) -> (Store<PluginState>, wasmtime::Result<Instance>) {
        let mut store = sandbox.store(plugin, event_id, attempt);
        sandbox.arm(&mut store, plugin, started);
        let instance = plugin.handler.instantiate(&mut store).await;
        (store, instance)
    }

    /// Call `handle` on the kept instance (on the caller's thread: the
    /// benchmarks' warm baseline).
    pub async fn invoke(
        &mut self,
        runtime: &Runtime,
        plugin: &PluginVersion,
        event: &Event,
        attempt: u32,
    ) -> Invocation {
        self.call(&runtime.sandbox, plugin, Call::new(event, attempt))
            .await
    }

    async fn call(&mut self, sandbox: &Sandbox, plugin: &PluginVersion, call: Call) -> Invocation {
        self.uses += 1;
        self.store.data().activity.restart(
            sandbox.settings.log_limits,
            &call.event_id,
            call.attempt,
        );
        sandbox.arm(&mut self.store, plugin, call.started);
        let run = plugin
            .handler
            .call(&mut self.store, &self.instance, &call.event);
        let result = sandbox.within_deadline(plugin, run).await;
        finish(plugin, &self.store, result, &call)
    }
}

/// The bare wasmtime baseline the peer benchmarks compare gridlet's path
/// against: one instance made once, the event converted to WIT values once,
/// and each call only `handle` — no deadline or fuel to arm, no log record
/// to reset, no outcome to classify. Not a delivery path.
pub struct BareCall {
    warm: WarmInstance,
    handle: handler::Handle,
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
        let handle = plugin.handler.handle(&mut warm.store, &warm.instance)?;
        Ok(Self {
            warm,
            handle,
            event: bindings::to_wit(event, 1),
        })
    }

    /// Call `handle` once; `true` when the plugin answered `ok`.
    pub async fn call(&mut self) -> bool {
        let warm = &mut self.warm;
        matches!(
            self.handle.call(&mut warm.store, &self.event).await,
            Ok(Ok(()))
        )
    }
}

impl Sandbox {
    /// The most instances kept idle across every version: a quarter of the
    /// pool, so fresh instances always find slots.
    fn max_kept(&self) -> usize {
        (self.settings.max_instances as usize / 4).max(1)
    }

    /// Deliver on one of the version's kept instances (or a new one), and
    /// keep it for the next delivery only if this one ended in `ok`, it has
    /// uses left, and the pool has room for idle instances. The caller
    /// holds a concurrency permit.
    pub(super) async fn reusing(&self, plugin: &PluginVersion, call: Call) -> Invocation {
        let kept = plugin.kept().pop();
        let mut warm = match kept {
            Some(warm) => {
                self.kept_total.fetch_sub(1, Ordering::SeqCst);
                warm
            }
            None => {
                let (store, instance) =
                    WarmInstance::start(self, plugin, &call.event_id, call.attempt, call.started)
                        .await;
                match instance {
                    Ok(instance) => WarmInstance {
                        store,
                        instance,
                        uses: 0,
                    },
                    Err(e) => return finish(plugin, &store, Err(e), &call),
                }
            }
        };
        let invocation = warm.call(self, plugin, call).await;
        let worth_keeping =
            invocation.outcome == Outcome::Handled && warm.uses < plugin.limits.reuse_instance;
        if worth_keeping && self.kept_total.fetch_add(1, Ordering::SeqCst) < self.max_kept() {
            plugin.kept().push(warm);
        } else if worth_keeping {
            // The pool's share for idle instances is full: let this one go.
            self.kept_total.fetch_sub(1, Ordering::SeqCst);
        }
        invocation
    }
}
