//! Dispatch: every accepted (event, matching plugin) pair becomes a
//! [`Delivery`], queued and run with bounded concurrency.
//!
//! This stage knows plugins only as [`Target`]s: something with a name, a
//! filter and a way to deliver. The plugin stage implements it on top of the
//! runtime, so dispatch never sees wasmtime.
//!
//! The queue is in process and bounded: when a batch's deliveries do not all
//! fit, the whole batch is refused with 503 and Retry-After (Event Grid
//! retries), rather than dropped. Durable delivery (journal, retries with
//! backoff, dead letters) replaces this queue.

use crate::event::Event;
use crate::ingest::{Busy, Intake};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{Semaphore, mpsc};

/// How a delivery ended, as dispatch needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Handled.
    Done,
    /// Try again later (a `retry`, a trap, a limit).
    Retry(String),
    /// Never try again (a `reject`).
    DeadLetter(String),
}

/// A plugin, as dispatch sees it.
#[async_trait::async_trait]
pub trait Target: Send + Sync + 'static {
    /// Its name.
    fn name(&self) -> &str;
    /// Does its filter let `event` through?
    fn accepts(&self, event: &Event) -> bool;
    /// Deliver one event.
    async fn deliver(&self, event: &Event, attempt: u32) -> Verdict;
}

/// The plugins serving right now.
pub trait Targets: Send + Sync + 'static {
    /// A snapshot of the current plugins.
    fn current(&self) -> Vec<Arc<dyn Target>>;
}

/// One event for one plugin.
pub struct Delivery {
    /// The event (shared by all its deliveries).
    pub event: Arc<Event>,
    /// The plugin.
    pub target: Arc<dyn Target>,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// Dispatch settings.
#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings {
    /// Deliveries waiting at most; a batch that does not fit is refused.
    pub queue_capacity: usize,
    /// Deliveries running at once across all plugins (each plugin also has
    /// its own `max_concurrency`).
    pub max_in_flight: usize,
    /// Seconds a refused sender is told to wait.
    pub retry_after_secs: u64,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            queue_capacity: 100_000,
            max_in_flight: 64,
            retry_after_secs: 10,
        }
    }
}

/// Counters since start.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events accepted.
    pub events: AtomicU64,
    /// Deliveries made from them.
    pub deliveries: AtomicU64,
    /// Deliveries handled.
    pub done: AtomicU64,
    /// Deliveries that asked for a retry or failed.
    pub retry: AtomicU64,
    /// Deliveries rejected.
    pub dead: AtomicU64,
    /// Batches refused because the queue was full.
    pub refused: AtomicU64,
}

impl Stats {
    /// Deliveries that have ended, whichever way.
    pub fn finished(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
            + self.retry.load(Ordering::Relaxed)
            + self.dead.load(Ordering::Relaxed)
    }
}

/// The queue and its workers.
pub struct Dispatcher {
    targets: Arc<dyn Targets>,
    queue: mpsc::Sender<Delivery>,
    settings: DispatchSettings,
    stats: Arc<Stats>,
}

impl Dispatcher {
    /// Start the worker loop on the current tokio runtime.
    pub fn start(targets: Arc<dyn Targets>, settings: DispatchSettings) -> Arc<Self> {
        let (queue, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let stats = Arc::new(Stats::default());
        tokio::spawn(run(rx, settings.max_in_flight.max(1), stats.clone()));
        Arc::new(Self {
            targets,
            queue,
            settings,
            stats,
        })
    }

    /// Counters since start.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

#[async_trait::async_trait]
impl Intake for Dispatcher {
    async fn accept(&self, events: Vec<Event>) -> Result<usize, Busy> {
        let targets = self.targets.current();
        let mut deliveries = Vec::new();
        for event in events {
            let event = Arc::new(event);
            for target in targets.iter().filter(|t| t.accepts(&event)) {
                deliveries.push(Delivery {
                    event: event.clone(),
                    target: target.clone(),
                    attempt: 1,
                });
            }
            self.stats.events.fetch_add(1, Ordering::Relaxed);
        }
        if deliveries.is_empty() {
            return Ok(0);
        }
        // All of the batch's deliveries, or none of them.
        let permits = self.queue.try_reserve_many(deliveries.len()).map_err(|_| {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            Busy {
                reason: format!(
                    "the delivery queue cannot take {} more deliveries (capacity {})",
                    deliveries.len(),
                    self.settings.queue_capacity
                ),
                retry_after: self.settings.retry_after_secs,
            }
        })?;
        let count = deliveries.len();
        for (permit, delivery) in permits.zip(deliveries) {
            permit.send(delivery);
        }
        self.stats
            .deliveries
            .fetch_add(count as u64, Ordering::Relaxed);
        Ok(count)
    }
}

/// Take deliveries off the queue and run them, `max_in_flight` at a time.
async fn run(mut rx: mpsc::Receiver<Delivery>, max_in_flight: usize, stats: Arc<Stats>) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    while let Some(delivery) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let verdict = delivery
                .target
                .deliver(&delivery.event, delivery.attempt)
                .await;
            let counter = match &verdict {
                Verdict::Done => &stats.done,
                Verdict::Retry(_) => &stats.retry,
                Verdict::DeadLetter(_) => &stats.dead,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            drop(slot);
        });
    }
}
