//! The cluster journal: NATS JetStream, shared by every gridlet host of a
//! cluster (docs/ARCHITECTURE.md, "Cluster mode").
//!
//! - Deliveries: stream `GRIDLET_DELIVERIES`, work-queue retention, one
//!   message per (event, plugin) on `gridlet.delivery.<plugin>.{new,retry}`
//!   ([`message`]); one durable pull consumer per plugin that every host
//!   binds to, so the hosts share the work. A message's stream sequence is
//!   the delivery's id.
//! - Dead letters: stream `GRIDLET_DEAD` on `gridlet.dead.<plugin>`, kept
//!   for the retention; replays are marked in key-value bucket
//!   `gridlet-replays`.
//! - Plugins pushed to the cluster: object-store bucket `gridlet-plugins`
//!   ([`plugins`]).
//! - A plugin's deliveries at once across the cluster: stream
//!   `GRIDLET_SLOTS` ([`slots`]).
//! - Dedup: key-value bucket `gridlet-seen`, one key per (topic, id), each
//!   expiring after the dedup window (24 h, as on one host); a publish
//!   repeated within the stream's duplicate window is dropped by its
//!   `Nats-Msg-Id`.
//!
//! The [`Journal`] trait is synchronous (the dispatcher calls it from
//! blocking threads), the client is async: the journal runs the client on a
//! runtime of its own and waits for answers on a channel, so it can be
//! called from any thread.

mod append;
mod dead;
mod deliveries;
mod io;
mod listing;
mod message;
mod plugins;
mod setup;
mod slots;

pub use plugins::{PluginChange, PluginStore, PushedPlugin};

use super::{
    AppendCompletion, Appended, Claimed, Completion, DeadLetter, DeadLetterReason, Journal,
    JournalError, NewEvent, PendingDelivery, Replayed, Settlement, Slots,
};
use async_nats::jetstream::{self, consumer, kv, stream};
use io::Io;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The deliveries stream.
const DELIVERIES: &str = "GRIDLET_DELIVERIES";
/// The dead letters stream.
const DEAD: &str = "GRIDLET_DEAD";
/// A small stream `/readyz` writes to, to know the cluster takes writes.
const HEALTH: &str = "GRIDLET_HEALTH";
/// The dedup bucket.
const SEEN: &str = "gridlet-seen";
/// The bucket marking replayed dead letters.
const REPLAYS: &str = "gridlet-replays";
/// How long a starting host waits for the cluster's streams (a cluster
/// starting beside it may still be electing leaders).
const STARTUP_WAIT: Duration = Duration::from_secs(60);
/// How long any one call to the cluster may take before the journal calls
/// it failed (ingest answers 503).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a fetch waits for the next message it asked for.
const FETCH_WAIT: Duration = Duration::from_millis(250);

/// A journal error saying what failed (`what`) and why.
fn failed(what: &str) -> impl Fn(&dyn std::fmt::Display) -> JournalError + '_ {
    move |e| JournalError(format!("{what}: {e}"))
}

/// `[cluster]`: where the NATS servers are and how the streams are kept.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// Server URLs (`nats://host:4222`, `tls://host:4222`); the client
    /// connects to any and follows the cluster.
    pub urls: Vec<String>,
    /// Replicas of every stream and bucket: 3 in production (a node may
    /// fail), 1 for a single server.
    pub replicas: usize,
    /// A NATS credentials file (JWT + nkey seed).
    pub credentials_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust for TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// How long an event's (topic, id) is remembered, to acknowledge Event
    /// Grid's duplicates once.
    pub dedup_window: Duration,
    /// How long a host may hold a delivery without word before another
    /// host gets it (hosts holding one longer say they are still at it).
    pub ack_wait: Duration,
    /// How long dead letters are kept.
    pub dead_letter_retention: Duration,
    /// How old a delivery for a plugin this host does not know (and the
    /// cluster's bucket does not hold) must be before this host
    /// dead-letters it as `PluginNotFound`: another host may serve a plugin
    /// this one has not loaded.
    pub unknown_plugin_grace: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            replicas: 1,
            credentials_file: None,
            tls_ca_file: None,
            dedup_window: Duration::from_secs(24 * 60 * 60),
            ack_wait: Duration::from_secs(30),
            dead_letter_retention: Duration::from_secs(30 * 24 * 60 * 60),
            unknown_plugin_grace: Duration::from_secs(10 * 60),
        }
    }
}

/// The JetStream journal.
pub struct JetStreamJournal {
    io: Io,
    inner: Arc<Inner>,
}

/// What the async side shares.
struct Inner {
    js: jetstream::Context,
    deliveries: stream::Stream,
    dead: stream::Stream,
    seen: kv::Store,
    replays: kv::Store,
    /// The plugins pushed to the cluster (their names are known plugins).
    plugins: PluginStore,
    settings: ClusterSettings,
    /// Each plugin's durable consumer, once bound.
    consumers: tokio::sync::Mutex<HashMap<String, consumer::PullConsumer>>,
    /// The slots stream.
    slots: stream::Stream,
    /// Each plugin's slot consumer and the bound its slots were made for.
    slot_consumers: tokio::sync::Mutex<HashMap<String, (consumer::PullConsumer, u32)>>,
    /// Deliveries this host claimed and has not settled, by id.
    claims: Mutex<HashMap<i64, deliveries::Claim>>,
    /// Deliveries not done across the cluster: refreshed from the stream
    /// every second, moved by this host's own appends and settlements in
    /// between.
    outstanding: AtomicI64,
}

impl JetStreamJournal {
    /// Connect to the cluster and make sure the streams and buckets exist.
    pub fn connect(settings: ClusterSettings) -> Result<Self, JournalError> {
        if settings.urls.is_empty() {
            return Err(JournalError("[cluster] urls is empty".into()));
        }
        let io = Io::start()?;
        let inner = io.run(Inner::connect(settings))??;
        let inner = Arc::new(inner);
        io.spawn(setup::refresh_outstanding(Arc::downgrade(&inner)));
        io.spawn(deliveries::keep_claims_alive(Arc::downgrade(&inner)));
        Ok(Self { io, inner })
    }

    /// The cluster's JetStream (for plugin state beside the journal), and
    /// the replicas its buckets keep.
    pub fn jetstream(&self) -> (jetstream::Context, usize) {
        (self.inner.js.clone(), self.inner.settings.replicas)
    }

    /// The cluster's plugin bucket.
    pub fn plugin_store(&self) -> PluginStore {
        self.inner.plugins.clone()
    }

    /// Run `f` on the journal's runtime with the shared state and wait.
    fn call<T, F>(&self, f: impl FnOnce(Arc<Inner>) -> F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, JournalError>> + Send + 'static,
    {
        let future = f(self.inner.clone());
        self.io.run(async move {
            tokio::time::timeout(CALL_TIMEOUT, future)
                .await
                .unwrap_or_else(|_| Err(JournalError("NATS did not answer in time".into())))
        })?
    }
}

impl Journal for JetStreamJournal {
    fn append(&self, batch: Vec<NewEvent>) -> Result<Appended, JournalError> {
        self.call(|inner| async move { inner.append(batch).await })
    }

    fn append_then(&self, batch: Vec<NewEvent>, done: AppendCompletion) {
        let inner = self.inner.clone();
        self.io.spawn(async move {
            let appended = tokio::time::timeout(CALL_TIMEOUT, inner.append(batch))
                .await
                .unwrap_or_else(|_| Err(JournalError("NATS did not answer in time".into())));
            done(appended);
        });
    }

    fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        slots: &[Slots],
        other_slots: u32,
        _in_flight: &[i64],
    ) -> Result<Claimed, JournalError> {
        // Deliveries in flight are the consumers' pending acks: JetStream
        // does not hand them out again, so `in_flight` is not needed.
        let slots = slots.to_vec();
        self.call(move |inner| async move { inner.claim(now_ms, limit, slots, other_slots).await })
    }

    fn next_due_ms(&self, _slots: &[Slots]) -> Result<Option<i64>, JournalError> {
        // Other hosts append too, and a retry's delay runs in the server:
        // look again shortly, whatever this host knows.
        Ok(Some(super::now_ms() + 200))
    }

    fn complete(&self, id: i64) -> Result<(), JournalError> {
        self.call(move |inner| async move { inner.settle(Settlement::Complete(id)).await })
    }

    fn retry_at(&self, id: i64, due_ms: i64, error: &str) -> Result<(), JournalError> {
        let error = error.to_string();
        self.call(move |inner| async move {
            inner
                .settle(Settlement::RetryAt { id, due_ms, error })
                .await
        })
    }

    fn postpone(&self, id: i64, due_ms: i64) -> Result<(), JournalError> {
        self.call(
            move |inner| async move { inner.settle(Settlement::Postpone { id, due_ms }).await },
        )
    }

    fn dead_letter(
        &self,
        id: i64,
        reason: DeadLetterReason,
        error: &str,
        now_ms: i64,
        attempts: u32,
    ) -> Result<(), JournalError> {
        let error = error.to_string();
        self.call(move |inner| async move {
            inner
                .settle(Settlement::DeadLetter {
                    id,
                    reason,
                    error,
                    at_ms: now_ms,
                    attempts,
                })
                .await
        })
    }

    fn settle(&self, settlement: Settlement, done: Completion) {
        let inner = self.inner.clone();
        self.io.spawn(async move {
            let settled = tokio::time::timeout(CALL_TIMEOUT, inner.settle(settlement))
                .await
                .unwrap_or_else(|_| Err(JournalError("NATS did not answer in time".into())));
            done(settled);
        });
    }

    fn expire(
        &self,
        plugin: &str,
        received_before_ms: i64,
        now_ms: i64,
    ) -> Result<u64, JournalError> {
        let plugin = plugin.to_string();
        self.call(
            move |inner| async move { inner.expire(&plugin, received_before_ms, now_ms).await },
        )
    }

    fn pending(&self) -> Result<u64, JournalError> {
        self.call(|inner| async move {
            let info = inner
                .deliveries
                .get_info()
                .await
                .map_err(|e| JournalError(format!("stream {DELIVERIES}: {e}")))?;
            Ok(info.state.messages)
        })
    }

    fn outstanding(&self) -> u64 {
        self.inner.outstanding.load(Ordering::SeqCst).max(0) as u64
    }

    fn check_writable(&self) -> Result<(), JournalError> {
        self.call(|inner| async move {
            inner
                .js
                .publish("gridlet.health", super::now_ms().to_string().into())
                .await
                .map_err(|e| JournalError(format!("stream {HEALTH}: {e}")))?
                .await
                .map_err(|e| JournalError(format!("stream {HEALTH}: {e}")))?;
            Ok(())
        })
    }

    fn deliveries(
        &self,
        plugin: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, JournalError> {
        let plugin = plugin.map(str::to_string);
        self.call(move |inner| async move { inner.list(plugin, limit).await })
    }

    fn delivery_counts(&self) -> Result<Vec<(String, u64, u64)>, JournalError> {
        self.call(|inner| async move { inner.counts().await })
    }

    fn dead_letters(&self, plugin: Option<&str>) -> Result<Vec<DeadLetter>, JournalError> {
        let plugin = plugin.map(str::to_string);
        self.call(move |inner| async move { inner.dead_letters(plugin).await })
    }

    fn dead_letter_event(
        &self,
        id: i64,
    ) -> Result<Option<(DeadLetter, serde_json::Value)>, JournalError> {
        self.call(move |inner| async move { inner.dead_letter_event(id).await })
    }

    fn purge(&self, ids: &[i64]) -> Result<u64, JournalError> {
        let ids = ids.to_vec();
        self.call(move |inner| async move { inner.purge(ids).await })
    }

    fn replay(&self, ids: &[i64], now_ms: i64, force: bool) -> Result<Replayed, JournalError> {
        let ids = ids.to_vec();
        self.call(move |inner| async move { inner.replay(ids, now_ms, force).await })
    }
}

impl Drop for JetStreamJournal {
    /// A host that stops gives the deliveries it claimed and did not
    /// settle back at once, instead of leaving them to the ack wait.
    fn drop(&mut self) {
        let inner = self.inner.clone();
        let _ = self.io.run(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), inner.release_claims()).await;
        });
    }
}
