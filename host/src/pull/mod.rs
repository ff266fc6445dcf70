//! Pull delivery: gridlet as the consumer of an Event Grid namespace topic
//! subscription, for hosts with outbound HTTPS only.
//!
//! The hot path, per source, in one loop ([`Source::run`]): receive a
//! batch under locks → read each event (an unreadable one, or one from a
//! topic not allowed, is rejected) → hand the readable ones to the same
//! [`Intake`] the webhook uses, renewing the locks while it works → on
//! commit acknowledge them; when the journal cannot take them (busy, disk
//! full) release them with a delay. An event is acknowledged only after the
//! journal committed all of its deliveries — the webhook's 200, in pull
//! form — so a crash between receive and acknowledge loses nothing: the
//! lock expires, Event Grid delivers the event again, and the journal's
//! dedup (topic, id) keeps it from reaching plugins twice.

pub mod client;

pub use client::{Credential, Namespace, PullError, ReleaseDelay, Settled, Subscription};

use crate::event::cloud_event_from_text;
use crate::ingest::{Intake, topic_allowed};
use crate::lograte::LogRate;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One `[[pull]]` source, as configured.
#[derive(Debug, Clone)]
pub struct PullSettings {
    /// A name for logs, metrics and status (default `<topic>/<subscription>`).
    pub name: String,
    /// Where and as whom.
    pub subscription: Subscription,
    /// Events per receive, 1–100 (default 100).
    pub max_events: u32,
    /// Longest wait for the first event of a receive, 10–120 s (default 60).
    pub max_wait: Duration,
    /// Receive loops running at once (default 1).
    pub concurrency: u32,
    /// How long released events wait when the journal cannot take them.
    pub busy_release_delay: ReleaseDelay,
    /// Renew the locks of events still being committed after this long
    /// (default 30 s; the subscription's lock lasts 60–300 s).
    pub renew_after: Duration,
}

impl PullSettings {
    /// A source for `subscription` with the defaults.
    pub fn new(subscription: Subscription) -> Self {
        Self {
            name: format!("{}/{}", subscription.topic, subscription.subscription),
            subscription,
            max_events: 100,
            max_wait: Duration::from_secs(60),
            concurrency: 1,
            busy_release_delay: ReleaseDelay::TenSeconds,
            renew_after: Duration::from_secs(30),
        }
    }
}

/// What a source has done, for `/readyz` and the admin API.
#[derive(Debug, Default)]
pub struct SourceStatus {
    /// Events received.
    pub received: AtomicU64,
    /// Events acknowledged (their deliveries committed).
    pub acknowledged: AtomicU64,
    /// Events released (the journal could not take them).
    pub released: AtomicU64,
    /// Events rejected (unreadable, or a topic not allowed).
    pub rejected: AtomicU64,
    /// Lock tokens a settle call reported as failed.
    pub failed_lock_tokens: AtomicU64,
    /// The last failed call and when, if the last call failed.
    pub last_error: Mutex<Option<(String, Instant)>>,
}

impl SourceStatus {
    /// Is the source receiving (its last call succeeded)?
    pub fn healthy(&self) -> bool {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// The counters and state as JSON.
    pub fn json(&self, name: &str) -> serde_json::Value {
        let error = self
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(e, at)| serde_json::json!({"error": e, "secondsAgo": at.elapsed().as_secs()}));
        serde_json::json!({
            "name": name,
            "state": if error.is_none() { "receiving" } else { "failing" },
            "received": self.received.load(Ordering::Relaxed),
            "acknowledged": self.acknowledged.load(Ordering::Relaxed),
            "released": self.released.load(Ordering::Relaxed),
            "rejected": self.rejected.load(Ordering::Relaxed),
            "failedLockTokens": self.failed_lock_tokens.load(Ordering::Relaxed),
            "lastError": error,
        })
    }
}

/// A running source.
pub struct Source {
    settings: PullSettings,
    client: Namespace,
    intake: Arc<dyn Intake>,
    allowed_topics: Vec<String>,
    /// Its counters and state.
    pub status: Arc<SourceStatus>,
    log: LogRate,
}

/// Waits after a failed call: 1 s doubling to 60 s, with jitter, unless the
/// service said how long (`Retry-After`).
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

impl Source {
    /// A source feeding `intake`, accepting events from `allowed_topics`
    /// (compared without case; empty allows all).
    pub fn new(
        settings: PullSettings,
        intake: Arc<dyn Intake>,
        allowed_topics: Vec<String>,
    ) -> Self {
        Self {
            client: Namespace::new(settings.subscription.clone()),
            settings,
            intake,
            allowed_topics,
            status: Arc::new(SourceStatus::default()),
            log: LogRate::new(5, 50),
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Receive and hand on until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        let mut backoff = BACKOFF_FIRST;
        loop {
            match self.once().await {
                Ok(()) => {
                    backoff = BACKOFF_FIRST;
                    *self
                        .status
                        .last_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = None;
                }
                Err(e) => {
                    metrics::counter!("gridlet_pull_failed_calls_total", "source" => self.settings.name.clone()).increment(1);
                    if self.log.allow() {
                        tracing::warn!(source = %self.settings.name, "pull: {e}");
                    }
                    *self
                        .status
                        .last_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some((e.to_string(), Instant::now()));
                    let wait = match e {
                        PullError::Throttled {
                            retry_after: Some(after),
                            ..
                        } => after,
                        _ => backoff.mul_f64(rand::random_range(0.5..1.5)),
                    };
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One receive and what follows it.
    async fn once(&self) -> Result<(), PullError> {
        let received = self
            .client
            .receive(self.settings.max_events, self.settings.max_wait)
            .await?;
        if received.is_empty() {
            return Ok(());
        }
        let name = &self.settings.name;
        self.count(
            "gridlet_pull_received_events_total",
            &self.status.received,
            received.len(),
        );
        let mut events = Vec::with_capacity(received.len());
        let mut tokens = Vec::with_capacity(received.len());
        let mut refused = Vec::new();
        for (i, r) in received.into_iter().enumerate() {
            match cloud_event_from_text(&r.event, i) {
                Ok(event) if topic_allowed(&self.allowed_topics, &event.topic) => {
                    events.push(event);
                    tokens.push(r.lock_token);
                }
                Ok(event) => {
                    self.refuse(&format!("topic `{}` is not in allowed_topics", event.topic));
                    refused.push(r.lock_token);
                }
                Err(e) => {
                    self.refuse(&e.to_string());
                    refused.push(r.lock_token);
                }
            }
        }
        if !refused.is_empty() {
            let settled = self.client.reject(&refused).await?;
            self.count(
                "gridlet_pull_rejected_events_total",
                &self.status.rejected,
                settled.succeeded.len(),
            );
            self.failed_tokens("reject", &settled);
        }
        if events.is_empty() {
            return Ok(());
        }
        // Commit, renewing the locks for as long as the commit takes.
        let accepted = {
            let accept = self.intake.accept(events);
            tokio::pin!(accept);
            let mut renew = tokio::time::interval_at(
                tokio::time::Instant::now() + self.settings.renew_after,
                self.settings.renew_after,
            );
            loop {
                tokio::select! {
                    result = &mut accept => break result,
                    _ = renew.tick() => match self.client.renew_locks(&tokens).await {
                        Ok(settled) => self.failed_tokens("renewLock", &settled),
                        Err(e) => tracing::warn!(source = %name, "pull: cannot renew locks: {e}"),
                    },
                }
            }
        };
        match accepted {
            Ok(_) => {
                let settled = self.client.acknowledge(&tokens).await?;
                self.count(
                    "gridlet_pull_acknowledged_events_total",
                    &self.status.acknowledged,
                    settled.succeeded.len(),
                );
                // An event whose acknowledgement failed comes back after its
                // lock expires; dedup keeps it from reaching plugins twice.
                self.failed_tokens("acknowledge", &settled);
            }
            Err(busy) => {
                tracing::warn!(source = %name, "pull: journal cannot take the batch ({}); releasing it", busy.reason);
                let settled = self
                    .client
                    .release(&tokens, self.settings.busy_release_delay)
                    .await?;
                self.count(
                    "gridlet_pull_released_events_total",
                    &self.status.released,
                    settled.succeeded.len(),
                );
                self.failed_tokens("release", &settled);
                // Backpressure: receive nothing more until the journal
                // could take it, as a webhook sender waits `Retry-After`.
                tokio::time::sleep(Duration::from_secs(busy.retry_after.max(1))).await;
            }
        }
        Ok(())
    }

    fn refuse(&self, why: &str) {
        if self.log.allow() {
            tracing::warn!(source = %self.settings.name, "pull: rejecting an event: {why}");
        }
    }

    fn count(&self, metric: &'static str, counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
        metrics::counter!(metric, "source" => self.settings.name.clone()).increment(n as u64);
    }

    fn failed_tokens(&self, operation: &'static str, settled: &Settled) {
        if settled.failed.is_empty() {
            return;
        }
        self.status
            .failed_lock_tokens
            .fetch_add(settled.failed.len() as u64, Ordering::Relaxed);
        metrics::counter!("gridlet_pull_failed_lock_tokens_total", "source" => self.settings.name.clone(), "operation" => operation)
            .increment(settled.failed.len() as u64);
        if self.log.allow() {
            let (_, code, message) = &settled.failed[0];
            tracing::warn!(
                source = %self.settings.name,
                operation,
                failed = settled.failed.len(),
                "pull: lock tokens not settled (first: {code}: {message})"
            );
        }
    }
}
