//! The outcome counters over the last hour, sampled at a fixed step, so the
//! console charts deliveries per minute from the moment it opens instead of
//! only while it stays open. Sampling costs nothing per delivery: the
//! counters are read where they already are.

use super::{Dispatcher, Stats};
use crate::journal::now_ms;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, Weak};
use std::time::Duration;

/// How far back the history reaches.
pub const HISTORY_SPAN: Duration = Duration::from_secs(60 * 60);

/// The outcome counters (since start) at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When (ms since the Unix epoch).
    pub at_ms: i64,
    /// Deliveries handled so far.
    pub done: u64,
    /// Attempts failed and scheduled again so far.
    pub retried: u64,
    /// Deliveries dead-lettered so far.
    pub dead_lettered: u64,
}

/// Samples every `step`, the last [`HISTORY_SPAN`] of them.
pub(super) struct History {
    step: Duration,
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    pub(super) fn new(step: Duration) -> Self {
        Self {
            step: step.max(Duration::from_millis(1)),
            samples: Mutex::default(),
        }
    }

    /// The step between samples.
    pub(super) fn step(&self) -> Duration {
        self.step
    }

    /// Take a sample of `stats`, as of `at_ms`.
    pub(super) fn record(&self, stats: &Stats, at_ms: i64) {
        let sample = Sample {
            at_ms,
            done: stats.done.load(Ordering::SeqCst),
            retried: stats.retry.load(Ordering::SeqCst),
            dead_lettered: stats.dead.load(Ordering::SeqCst),
        };
        let keep = (HISTORY_SPAN.as_millis() / self.step.as_millis()).max(1) as usize + 1;
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back(sample);
        while samples.len() > keep {
            samples.pop_front();
        }
    }

    /// The samples kept, oldest first.
    pub(super) fn samples(&self) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.iter().copied().collect()
    }
}

/// Sample `dispatcher`'s counters every step from one step on, until it
/// stops or is dropped.
pub(super) async fn sample(dispatcher: Weak<Dispatcher>) {
    let step = match dispatcher.upgrade() {
        Some(d) => d.history.step(),
        None => return,
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(d) = dispatcher.upgrade() else {
            return;
        };
        if d.stopping.load(Ordering::SeqCst) {
            return;
        }
        d.history.record(&d.stats, now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An hour of samples is kept, no more: the oldest go first.
    #[test]
    fn only_the_last_hour_is_kept() {
        let history = History::new(Duration::from_secs(20 * 60));
        let stats = Stats::default();
        for minute in 0..10 {
            stats.done.store(minute, Ordering::SeqCst);
            history.record(&stats, minute as i64 * 20 * 60_000);
        }
        let done: Vec<u64> = history.samples().iter().map(|s| s.done).collect();
        assert_eq!(
            done,
            [6, 7, 8, 9],
            "an hour at 20-minute steps, both ends kept"
        );
    }
}
