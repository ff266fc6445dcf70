//! One delivery in the sandbox: a store with the plugin's capabilities and
//! limits, armed with its deadline and fuel, a fresh instance, the call, and
//! its outcome named. Everything here is owned or shared (`Arc`), so a
//! delivery can run on the guest pool, apart from the host's threads.

use super::activity::Activity;
use super::bindings::{self, HandlerError, WitEvent};
use super::keyvalue::KeyValue;
use super::outcome::{self, DeadlineExceeded};
use super::store::PluginState;
use super::{Invocation, Outcome, PluginVersion, RuntimeSettings};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;
use wasmtime::{Engine, Store, UpdateDeadline};

/// What every delivery's store is made from.
pub(super) struct Sandbox {
    pub(super) engine: Engine,
    pub(super) kv: Arc<dyn KeyValue>,
    pub(super) settings: RuntimeSettings,
    /// Instances kept for reuse, across every version (bounded, so idle
    /// kept instances never take the pool from fresh ones).
    pub(super) kept_total: Arc<AtomicUsize>,
    /// The host's runtime, where outbound connections' I/O runs when guest
    /// code has threads of its own (see `http::on_host`).
    pub(super) io: Option<tokio::runtime::Handle>,
}

/// One delivery's call, prepared on the caller's side.
pub(super) struct Call {
    pub(super) event_id: String,
    pub(super) event: WitEvent,
    pub(super) attempt: u32,
    pub(super) started: Instant,
}

impl Call {
    pub(super) fn new(event: &crate::event::Event, attempt: u32) -> Self {
        Self {
            event_id: event.id.clone(),
            event: bindings::to_wit(event, attempt),
            attempt,
            started: Instant::now(),
        }
    }
}

impl Sandbox {
    /// A store for one delivery, with the plugin's sandbox and limits.
    pub(super) fn store(
        &self,
        plugin: &PluginVersion,
        event_id: &str,
        attempt: u32,
    ) -> Store<PluginState> {
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
            &plugin.limits,
            super::http::HttpRuntime {
                limits: self.settings.http,
                io: self.io.clone(),
            },
            plugin.shared.clone(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
    }

    /// Set the deadline (from `started`) and the fuel for one call.
    pub(super) fn arm(
        &self,
        store: &mut Store<PluginState>,
        plugin: &PluginVersion,
        started: Instant,
    ) {
        // Check the deadline at every epoch tick, yielding to the scheduler
        // in between so a spinning plugin never starves the others. Tokio's
        // own yield puts the task behind every other runnable one and lets
        // the worker poll for I/O first; a plain wake-up would be run again
        // at once (tokio's LIFO slot) and leave I/O unpolled for dozens of
        // ticks, delaying every other plugin's network round trips.
        // A busy instance takes one of its plugin's turns to yield, so a
        // plugin running many busy instances waits in the queue as one
        // plugin, not as many, and the others' deliveries are not stuck
        // behind all of its slices.
        let turns = plugin.shared.busy_turns.clone();
        let limit = plugin.limits.deadline;
        let deadline = started + limit;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(DeadlineExceeded(limit).into())
            } else {
                let turns = turns.clone();
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(async move {
                        let _turn = turns.acquire_owned().await;
                        tokio::task::yield_now().await;
                    }),
                ))
            }
        });
        if self.settings.fuel {
            // Without a fuel limit, fuel is effectively unlimited.
            let _ = store.set_fuel(plugin.limits.fuel.unwrap_or(u64::MAX));
        }
    }

    /// Deliver on a fresh instance.
    pub(super) async fn fresh(&self, plugin: &PluginVersion, call: Call) -> Invocation {
        let mut store = self.store(plugin, &call.event_id, call.attempt);
        self.arm(&mut store, plugin, call.started);
        let run = async {
            let instance = plugin.handler.instantiate(&mut store).await?;
            plugin
                .handler
                .call(&mut store, &instance, &call.event)
                .await
        };
        let result = self.within_deadline(plugin, run).await;
        let invocation = finish(plugin, &store, result, &call);
        // Returning a large memory to the kernel takes milliseconds no epoch
        // can interrupt: do it beside the guest threads, so the next
        // plugin's delivery does not wait behind it.
        if store.data().limiter.used() > FREE_ASIDE_BYTES {
            tokio::task::spawn_blocking(move || drop(store));
        }
        invocation
    }

    /// `run`, or a deadline failure: the epoch check cannot fire while the
    /// plugin waits in a host call (an outbound request), so a timer covers
    /// that.
    pub(super) async fn within_deadline(
        &self,
        plugin: &PluginVersion,
        run: impl Future<Output = wasmtime::Result<Result<(), HandlerError>>>,
    ) -> wasmtime::Result<Result<(), HandlerError>> {
        let limit = plugin.limits.deadline + self.settings.epoch_tick;
        match tokio::time::timeout(limit, run).await {
            Ok(result) => result,
            Err(_) => Err(DeadlineExceeded(plugin.limits.deadline).into()),
        }
    }
}

/// Memory above which a finished instance is freed on a blocking thread.
const FREE_ASIDE_BYTES: usize = 16 * 1024 * 1024;

/// Turn a call's result into an [`Invocation`], logging anything but success.
pub(super) fn finish(
    plugin: &PluginVersion,
    store: &Store<PluginState>,
    result: wasmtime::Result<Result<(), HandlerError>>,
    call: &Call,
) -> Invocation {
    let state = store.data();
    state.flush_output();
    let fuel_used = plugin
        .limits
        .fuel
        .map(|f| f.saturating_sub(store.get_fuel().unwrap_or(0)));
    let (entries, dropped_log_lines) = state.activity.finish();
    // A plugin's reasons may quote its config: redact them like its logs,
    // before cutting them, so that a cut never keeps part of a value.
    let reason = |why: String| outcome::reason(&plugin.grants.config.redact(&why), why.len());
    let outcome = match result {
        Ok(Ok(())) => Outcome::Handled,
        Ok(Err(HandlerError::Retry(why))) => Outcome::Retry(reason(why)),
        Ok(Err(HandlerError::Reject(why))) => Outcome::Reject(reason(why)),
        Err(e) => Outcome::Failed(outcome::classify(&e, &state.limiter, &entries)),
    };
    let duration = call.started.elapsed();
    let (event_id, attempt) = (&call.event_id, call.attempt);
    match &outcome {
        Outcome::Handled => {
            tracing::debug!(
                plugin = plugin.name(),
                event_id,
                attempt,
                ?duration,
                "handled"
            )
        }
        other => {
            tracing::warn!(plugin = plugin.name(), event_id, attempt, ?duration, outcome = %other, "not handled")
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
