//! Dispatch: every accepted (event, matching plugin) pair is a delivery in
//! the journal, committed before the webhook answers 200. A loop claims the
//! deliveries that are due and runs them; each outcome is recorded: done,
//! tried again later with backoff, or dead-lettered.
//!
//! Dispatch knows plugins only as [`Target`]s (a name, a filter, a policy,
//! a way to deliver): the plugin stage implements that over the runtime.

use crate::event::Event;
use crate::ingest::{Busy, Intake};
use crate::journal::{Journal, JournalError, NewEvent, Replayed, now_ms};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

mod attempt;
mod claims;
mod history;
mod live;
mod run;
mod target;

pub use claims::CLAIM_DEPTH;
use claims::{Gates, Running};
pub use history::{HISTORY_SPAN, Sample};
pub use live::{LIVE_BACKLOG, LiveEvent};
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
    /// How often deliveries waiting for a plugin with no version serving
    /// are checked against their time-to-live.
    pub expire_waiting_every: Duration,
    /// How often the outcome counters are sampled for the last hour's
    /// history (the console's chart).
    pub history_step: Duration,
    /// The longest the dispatch loop sleeps without a wake-up. A safety
    /// net: a new batch, a finished delivery, a replay and a plugin
    /// version starting to serve each wake it, and a retry's due time ends
    /// its sleep; what is left is another host's work on a shared journal.
    pub idle_at_most: Duration,
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
            expire_waiting_every: Duration::from_secs(60),
            history_step: Duration::from_secs(10),
            idle_at_most: Duration::from_secs(1),
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
    /// Deliveries put back without an attempt (no instance to be had, the
    /// plugin not serving).
    pub postponed: AtomicU64,
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
    /// Set while outcomes cannot be recorded: claiming pauses.
    settle_failing: AtomicBool,
    /// Claimed deliveries (running, waiting for a permit, or waiting for
    /// their outcome's commit).
    running: Mutex<Running>,
    /// Per plugin, the permits its claimed deliveries run under.
    gates: Gates,
    wake: Notify,
    /// The plugin set changed (a version serves, a plugin went).
    targets_changed: Option<Arc<Notify>>,
    stopping: AtomicBool,
    /// Accepted events, for whoever watches the live tail; gone once the
    /// host stops serving (so open tails end and connections can close).
    live: Mutex<Option<tokio::sync::broadcast::Sender<LiveEvent>>>,
    /// The outcome counters over the last hour.
    history: history::History,
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
        let step = settings.history_step;
        let targets_changed = targets.changed();
        let dispatcher = Arc::new(Self {
            targets,
            targets_changed,
            journal,
            settings,
            stats: Stats::default(),
            per_plugin: Mutex::default(),
            settle_failing: AtomicBool::new(false),
            running: Mutex::new(Running::default()),
            gates: Gates::default(),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            live: Mutex::new(Some(tokio::sync::broadcast::channel(LIVE_BACKLOG).0)),
            history: history::History::new(step),
        });
        // The first sample is the start (all zero), then one every step.
        dispatcher.history.record(&dispatcher.stats, now_ms());
        tokio::spawn(dispatcher.clone().run());
        tokio::spawn(history::sample(Arc::downgrade(&dispatcher)));
        Ok(dispatcher)
    }

    /// The outcome counters over the last [`HISTORY_SPAN`], one sample
    /// per step (oldest first), and the step.
    pub fn history(&self) -> (Duration, Vec<Sample>) {
        (self.history.step(), self.history.samples())
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Watch accepted events from now on (each once it is stored); `None`
    /// once the host is stopping.
    pub fn watch(&self) -> Option<tokio::sync::broadcast::Receiver<LiveEvent>> {
        self.live_sender().map(|s| s.subscribe())
    }

    /// End every watch (the host is stopping).
    pub fn stop_watches(&self) {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn live_sender(&self) -> Option<tokio::sync::broadcast::Sender<LiveEvent>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
        let received: Vec<&'static str> = batch.iter().map(|n| n.event.type_label()).collect();
        let wanted: u64 = batch.iter().map(|n| n.plugins.len() as u64).sum();
        // Only while someone watches: the tail costs nothing otherwise.
        let watched = self.live_sender().filter(|s| s.receiver_count() > 0);
        let live: Vec<LiveEvent> = match &watched {
            Some(_) => {
                let now = now_ms();
                batch.iter().map(|n| LiveEvent::of(n, now)).collect()
            }
            None => Vec::new(),
        };
        let outstanding = self.journal.outstanding();
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
        self.wake.notify_one();
        if let Some(sender) = watched {
            for event in live {
                let _ = sender.send(event);
            }
        }
        Ok(appended.deliveries)
    }
}
