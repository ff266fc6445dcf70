//! Dispatch: every accepted (event, matching plugin) pair is a delivery in
//! the journal, committed before the webhook answers 200. A loop claims the
//! deliveries that are due and runs them; each outcome is recorded: done,
//! tried again later with backoff, or dead-lettered.
//!
//! Dispatch knows plugins only as [`Target`]s (a name, a filter, a policy,
//! a way to deliver): the plugin stage implements that over the runtime.

use crate::event::Event;
use crate::ingest::{Busy, Intake};
use crate::journal::{
    DeadLetterReason, DueDelivery, Journal, JournalError, NewEvent, Replayed, Settlement, Slots,
    now_ms,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

mod claims;
mod target;

pub use claims::CLAIM_DEPTH;
use claims::{Gates, Running};
pub use target::{Policy, Target, Targets, Verdict};

/// Dispatch settings.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Most deliveries not yet done; a batch that would pass it gets 503.
    pub queue_capacity: usize,
    /// Deliveries running at once across all plugins.
    pub max_in_flight: usize,
    /// Seconds a refused sender is told to wait.
    pub retry_after_secs: u64,
    /// Wait before attempt 2, 3, ...; the last repeats. Jittered ±10 %.
    pub retry_delays: Vec<Duration>,
    /// On shutdown, how long running deliveries may take to finish.
    pub shutdown_grace: Duration,
}

/// Event Grid's retry schedule.
pub fn event_grid_schedule() -> Vec<Duration> {
    [10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 43_200]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            queue_capacity: 100_000,
            max_in_flight: 1024,
            retry_after_secs: 10,
            retry_delays: event_grid_schedule(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events accepted (duplicates included).
    pub events: AtomicU64,
    /// Events acknowledged as duplicates and not delivered again.
    pub duplicates: AtomicU64,
    /// Deliveries created.
    pub deliveries: AtomicU64,
    /// Deliveries handled.
    pub done: AtomicU64,
    /// Attempts that failed and were scheduled again.
    pub retry: AtomicU64,
    /// Deliveries dead-lettered.
    pub dead: AtomicU64,
    /// Batches refused (backpressure or journal failure).
    pub refused: AtomicU64,
}

impl Stats {
    /// Deliveries that have ended for good (handled or dead-lettered).
    pub fn finished(&self) -> u64 {
        self.done.load(Ordering::SeqCst) + self.dead.load(Ordering::SeqCst)
    }
}

/// One plugin's deliveries since start, after Event Grid's
/// DeliverySuccessCount, DeliveryAttemptFailCount and DeadLetteredCount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginCounters {
    /// Deliveries handled.
    pub delivered: u64,
    /// Attempts that failed and were scheduled again.
    pub retried: u64,
    /// Deliveries dead-lettered.
    pub dead_lettered: u64,
    /// The last failed attempt's error and when (ms since the epoch).
    pub last_error: Option<(String, i64)>,
}

/// The durable dispatcher.
pub struct Dispatcher {
    targets: Arc<dyn Targets>,
    journal: Arc<dyn Journal>,
    settings: DispatchSettings,
    stats: Stats,
    per_plugin: Mutex<HashMap<String, PluginCounters>>,
    /// Deliveries in the journal not yet done (kept in memory for backpressure).
    outstanding: AtomicU64,
    /// Claimed deliveries (running, waiting for a permit, or waiting for
    /// their outcome's commit).
    running: Mutex<Running>,
    /// Per plugin, the permits its claimed deliveries run under.
    gates: Gates,
    wake: Notify,
    stopping: AtomicBool,
}

impl Dispatcher {
    /// Resume what a previous run left (every delivery without a recorded
    /// outcome) and start the dispatch loop.
    pub fn start(
        targets: Arc<dyn Targets>,
        journal: Arc<dyn Journal>,
        settings: DispatchSettings,
    ) -> Result<Arc<Self>, JournalError> {
        let outstanding = journal.pending()?;
        if outstanding > 0 {
            tracing::info!(
                pending = outstanding,
                "resuming deliveries from the journal"
            );
        }
        let dispatcher = Arc::new(Self {
            targets,
            journal,
            settings,
            stats: Stats::default(),
            per_plugin: Mutex::default(),
            outstanding: AtomicU64::new(outstanding),
            running: Mutex::new(Running::default()),
            gates: Gates::default(),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
        });
        tokio::spawn(dispatcher.clone().run());
        Ok(dispatcher)
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The deliveries being attempted right now, by id, with their plugin.
    pub fn in_flight(&self) -> Vec<(i64, String)> {
        let running = self.running();
        let mut ids: Vec<(i64, String)> = running
            .plugin_of
            .iter()
            .map(|(id, p)| (*id, p.clone()))
            .collect();
        ids.sort();
        ids
    }

    /// One plugin's counters since start.
    pub fn plugin_counters(&self, plugin: &str) -> PluginCounters {
        self.counters().get(plugin).cloned().unwrap_or_default()
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, HashMap<String, PluginCounters>> {
        self.per_plugin.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The journal.
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    /// Deliver dead letters again: a new delivery each, due now. One that
    /// was replayed before is skipped unless `force`d, so a repeated
    /// request (a retried click, a script run twice) delivers nothing twice.
    pub async fn replay(&self, ids: Vec<i64>, force: bool) -> Result<Replayed, JournalError> {
        let journal = self.journal.clone();
        let r = blocking(move || journal.replay(&ids, now_ms(), force)).await?;
        self.outstanding.fetch_add(r.replayed, Ordering::SeqCst);
        metrics::counter!("gridlet_replayed_total").increment(r.replayed);
        self.wake.notify_one();
        Ok(r)
    }

    /// Stop claiming deliveries and wait (up to the grace period) for the
    /// running ones; what is left stays in the journal for the next start.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
        let deadline = tokio::time::Instant::now() + self.settings.shutdown_grace;
        while self.running_total() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.running_total();
        if left > 0 {
            tracing::warn!(
                left,
                "shutdown grace ended with deliveries running; they resume on the next start"
            );
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn running_total(&self) -> u32 {
        self.running().plugin_of.len() as u32
    }

    /// The loop: claim what is due and what fits, run it, sleep until the
    /// next due time or a wake-up (a new batch, a finished delivery).
    async fn run(self: Arc<Self>) {
        let mut last_sweep = std::time::Instant::now() - Duration::from_secs(2);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            metrics::gauge!("gridlet_deliveries_pending")
                .set(self.outstanding.load(Ordering::SeqCst) as f64);
            let targets = self.targets.current();
            // Deliveries of plugins that are not loaded (removed): looked for
            // once a second, as finding them scans every due delivery.
            let other_slots = if last_sweep.elapsed() >= Duration::from_secs(1) {
                last_sweep = std::time::Instant::now();
                16
            } else {
                0
            };
            let (free, slots, in_flight) = {
                let running = self.running();
                let mut busy_ids = running.by_plugin();
                let slots: Vec<Slots> = targets
                    .iter()
                    .map(|t| {
                        let busy = running.per_plugin.get(t.name()).copied().unwrap_or(0);
                        Slots {
                            plugin: t.name().to_string(),
                            free: (t.policy().max_concurrency * CLAIM_DEPTH).saturating_sub(busy),
                            in_flight: busy_ids.remove(t.name()).unwrap_or_default(),
                        }
                    })
                    .collect();
                let free = self
                    .settings
                    .max_in_flight
                    .saturating_sub(running.plugin_of.len());
                // Every id in flight, only for the sweep of removed plugins.
                let in_flight: Vec<i64> = if other_slots > 0 {
                    running.plugin_of.keys().copied().collect()
                } else {
                    Vec::new()
                };
                (free, slots, in_flight)
            };
            let journal = self.journal.clone();
            let claimed = blocking(move || {
                journal.claim_due(now_ms(), free, &slots, other_slots, &in_flight)
            })
            .await;
            match claimed {
                Ok(due) if !due.is_empty() => {
                    // Each delivery goes to the version serving now, after the
                    // claim: one swapped in while claiming already gets it.
                    let serving = self.targets.current();
                    for delivery in due {
                        self.running().start(&delivery);
                        let target = serving
                            .iter()
                            .find(|t| t.name() == delivery.plugin)
                            .cloned();
                        tokio::spawn(self.clone().attempt(delivery, target));
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::error!("cannot read due deliveries: {e}"),
            }
            // Hold no plugin version while idle: a replaced one is freed as
            // soon as its last delivery ends.
            drop(targets);
            let journal = self.journal.clone();
            let next = blocking(move || journal.next_due_ms()).await.ok().flatten();
            let wait = next.map_or(Duration::from_secs(1), |at| {
                Duration::from_millis((at - now_ms()).clamp(1, 1000) as u64)
            });
            tokio::select! {
                _ = self.wake.notified() => {
                    // Let the other finishing deliveries land too, so the next
                    // claim fills many slots at once instead of one per wake-up.
                    if self.running_total() > 0 {
                        tokio::time::sleep(Duration::from_micros(500)).await;
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One attempt of one delivery, and its record.
    async fn attempt(self: Arc<Self>, d: DueDelivery, target: Option<Arc<dyn Target>>) {
        let now = now_ms();
        let record = match &target {
            None => Record::Dead(
                DeadLetterReason::PluginNotFound,
                format!("plugin `{}` is not loaded", d.plugin),
            ),
            Some(t) => {
                let policy = t.policy();
                let age = Duration::from_millis((now - d.received_at_ms).max(0) as u64);
                if age > policy.time_to_live {
                    Record::Dead(
                        DeadLetterReason::TimeToLiveExceeded,
                        format!(
                            "the event is {}s old; its time-to-live is {}s",
                            age.as_secs(),
                            policy.time_to_live.as_secs()
                        ),
                    )
                } else {
                    let gate = self.gates.of(t.name(), policy.max_concurrency);
                    let _running = gate.acquire_owned().await;
                    if self.stopping.load(Ordering::SeqCst) {
                        // Claimed but not started: it stays pending, unattempted.
                        self.running().finish(&d);
                        self.wake.notify_one();
                        return;
                    }
                    match t.deliver(&d.event, d.attempt).await {
                        Verdict::Done => Record::Done,
                        Verdict::DeadLetter(why) => Record::Dead(DeadLetterReason::Rejected, why),
                        Verdict::Retry(why) if d.attempt >= policy.max_attempts => {
                            Record::Dead(DeadLetterReason::MaxDeliveryAttemptsExceeded, why)
                        }
                        Verdict::Retry(why) => Record::Retry(why),
                    }
                }
            }
        };
        self.count(&d, &record);
        let id = d.id;
        let settlement = match &record {
            Record::Done => Settlement::Complete(id),
            Record::Retry(why) => {
                let due_ms = now_ms() + self.backoff(d.attempt).as_millis() as i64;
                Settlement::RetryAt {
                    id,
                    due_ms,
                    error: why.clone(),
                }
            }
            Record::Dead(reason, why) => {
                tracing::warn!(plugin = %d.plugin, event_id = %d.event.id, attempts = d.attempt, reason = reason.as_str(), why, "dead-lettered");
                // A TTL or missing-plugin dead letter made no attempt this time.
                let attempts = match reason {
                    DeadLetterReason::Rejected | DeadLetterReason::MaxDeliveryAttemptsExceeded => {
                        d.attempt
                    }
                    _ => d.attempt - 1,
                };
                Settlement::DeadLetter {
                    id,
                    reason: *reason,
                    error: why.clone(),
                    at_ms: now_ms(),
                    attempts,
                }
            }
        };
        let result = answer(|done| self.journal.settle(settlement, done), "an outcome").await;
        match result {
            // Counted once recorded, so the counters never run ahead of
            // what the journal (and its admin API) shows.
            Ok(()) => {
                let counter = match &record {
                    Record::Done => &self.stats.done,
                    Record::Retry(_) => &self.stats.retry,
                    Record::Dead(..) => &self.stats.dead,
                };
                counter.fetch_add(1, Ordering::SeqCst);
            }
            // The delivery stays in the journal and is attempted again.
            Err(e) => tracing::error!(delivery = id, "cannot record an outcome: {e}"),
        }
        if !matches!(record, Record::Retry(_)) {
            // Saturating: deliveries also arrive by replay and from a journal
            // written before this start.
            let _ = self
                .outstanding
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    Some(n.saturating_sub(1))
                });
        }
        // Only now, with the outcome committed, may it be claimed again.
        self.running().finish(&d);
        self.wake.notify_one();
    }

    fn count(&self, d: &DueDelivery, record: &Record) {
        let (plugin, event_type) = (d.plugin.clone(), d.event.short_type().to_string());
        match record {
            Record::Done => {
                metrics::counter!("gridlet_delivery_success_total", "plugin" => plugin.clone(), "event_type" => event_type)
                    .increment(1);
                let latency = (now_ms() - d.received_at_ms).max(0) as f64 / 1000.0;
                metrics::histogram!("gridlet_delivery_latency_seconds", "plugin" => plugin.clone())
                    .record(latency);
            }
            Record::Retry(_) => {}
            Record::Dead(reason, _) => {
                metrics::counter!("gridlet_dead_lettered_total", "plugin" => plugin.clone(), "event_type" => event_type, "reason" => reason.as_str())
                    .increment(1);
                let latency = (now_ms() - d.received_at_ms).max(0) as f64 / 1000.0;
                metrics::histogram!("gridlet_delivery_latency_seconds", "plugin" => plugin.clone())
                    .record(latency);
            }
        }
        let plugin = plugin.as_str();
        let mut counters = self.counters();
        let c = counters.entry(plugin.to_string()).or_default();
        match record {
            Record::Done => c.delivered += 1,
            Record::Retry(why) => {
                c.retried += 1;
                c.last_error = Some((why.clone(), now_ms()));
            }
            Record::Dead(_, why) => {
                c.dead_lettered += 1;
                c.last_error = Some((why.clone(), now_ms()));
            }
        }
    }

    /// The wait before the attempt after `attempt`, with ±10 % jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let delays = &self.settings.retry_delays;
        let base = delays
            .get((attempt as usize).saturating_sub(1))
            .or(delays.last())
            .copied()
            .unwrap_or(Duration::from_secs(10));
        base.mul_f64(rand::random_range(0.9..1.1))
    }
}

enum Record {
    Done,
    Retry(String),
    Dead(DeadLetterReason, String),
}

/// Hand work to the journal and await its answer without holding a thread:
/// the journal's writer calls `done` once the work is committed.
async fn answer<T: Send + 'static>(
    submit: impl FnOnce(Box<dyn FnOnce(Result<T, JournalError>) + Send>),
    what: &str,
) -> Result<T, JournalError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    submit(Box::new(move |r| {
        let _ = tx.send(r);
    }));
    rx.await
        .unwrap_or_else(|_| Err(JournalError(format!("the journal dropped {what}"))))
}

/// Run blocking journal work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, JournalError> + Send + 'static,
) -> Result<T, JournalError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(JournalError(format!("journal task failed: {e}"))))
}

#[async_trait::async_trait]
impl Intake for Dispatcher {
    async fn accept(&self, events: Vec<Event>) -> Result<usize, Busy> {
        let targets = self.targets.current();
        let batch: Vec<NewEvent> = events
            .into_iter()
            .map(|event| {
                let plugins = targets
                    .iter()
                    .filter(|t| t.accepts(&event))
                    .map(|t| t.name().to_string())
                    .collect();
                NewEvent {
                    event: Arc::new(event),
                    plugins,
                }
            })
            .collect();
        let count = batch.len() as u64;
        let received: Vec<String> = batch
            .iter()
            .map(|n| n.event.short_type().to_string())
            .collect();
        let wanted: u64 = batch.iter().map(|n| n.plugins.len() as u64).sum();
        let outstanding = self.outstanding.load(Ordering::SeqCst);
        let cap = self.settings.queue_capacity as u64;
        if outstanding + wanted > cap {
            self.stats.refused.fetch_add(1, Ordering::SeqCst);
            return Err(Busy {
                reason: format!(
                    "{wanted} more deliveries would pass the bound of {cap} pending ({outstanding} pending now)"
                ),
                retry_after: self.settings.retry_after_secs,
            });
        }
        let appended = answer(|done| self.journal.append_then(batch, done), "a batch")
            .await
            .map_err(|e| {
                self.stats.refused.fetch_add(1, Ordering::SeqCst);
                tracing::error!("cannot commit a batch, answering 503: {e}");
                Busy {
                    reason: "the journal cannot store the events now; nothing was stored".into(),
                    retry_after: self.settings.retry_after_secs,
                }
            })?;
        self.stats.events.fetch_add(count, Ordering::SeqCst);
        // Every acknowledged event, duplicates included (Event Grid counts
        // what was published; duplicates are counted on their own too).
        for event_type in received {
            metrics::counter!("gridlet_events_received_total", "event_type" => event_type)
                .increment(1);
        }
        metrics::counter!("gridlet_events_duplicate_total").increment(appended.duplicates as u64);
        self.stats
            .duplicates
            .fetch_add(appended.duplicates as u64, Ordering::SeqCst);
        self.stats
            .deliveries
            .fetch_add(appended.deliveries as u64, Ordering::SeqCst);
        self.outstanding
            .fetch_add(appended.deliveries as u64, Ordering::SeqCst);
        self.wake.notify_one();
        Ok(appended.deliveries)
    }
}
