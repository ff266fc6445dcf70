//! One attempt of one delivery, and its record. The outcome is recorded
//! before the claim is let go; an outcome that cannot be recorded is tried
//! again with backoff while the claim is held (claiming pauses meanwhile),
//! so a journal that cannot write never turns into a hot loop of repeated
//! attempts.

use super::{Dispatcher, Target, Verdict, answer};
use crate::journal::{DeadLetterReason, DueDelivery, Settlement, now_ms};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A delivery's outcome, before it is recorded.
pub(super) enum Record {
    Done,
    Retry(String),
    Dead(DeadLetterReason, String),
    /// Not attempted; due again soon, the attempt not counted.
    Postponed(String),
}

/// Waits between tries of recording an outcome: 50 ms doubling to 5 s.
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(50);
const RECORD_RETRY_MAX: Duration = Duration::from_secs(5);
/// How soon a postponed delivery is due again.
const POSTPONE: Duration = Duration::from_millis(200);

impl Dispatcher {
    /// Attempt `d` on `target` (none: the plugin is not loaded) and record
    /// the outcome.
    pub(super) async fn attempt(self: Arc<Self>, d: DueDelivery, target: Option<Arc<dyn Target>>) {
        let Some(record) = self.outcome(&d, target).await else {
            // Claimed but not started (shutdown): it stays pending, unattempted.
            self.running().finish(d.id, &d.plugin);
            self.wake.notify_one();
            return;
        };
        let settlement = self.settlement(&d, &record);
        self.record(d.id, &d.plugin, settlement).await;
        self.count(&d, &record);
        // Only now, with the outcome committed, may it be claimed again.
        self.running().finish(d.id, &d.plugin);
        self.wake.notify_one();
    }

    /// Record an outcome decided without an attempt (an unreadable event).
    pub(super) async fn record_only(
        self: Arc<Self>,
        id: i64,
        plugin: String,
        settlement: Settlement,
    ) {
        self.record(id, &plugin, settlement).await;
        self.stats.dead.fetch_add(1, Ordering::SeqCst);
        self.running().finish(id, &plugin);
        self.wake.notify_one();
    }

    async fn outcome(&self, d: &DueDelivery, target: Option<Arc<dyn Target>>) -> Option<Record> {
        let Some(t) = target else {
            return Some(Record::Dead(
                DeadLetterReason::PluginNotFound,
                format!("plugin `{}` is not loaded", d.plugin),
            ));
        };
        if !t.serving() {
            return Some(Record::Postponed(format!(
                "plugin `{}` has no version serving",
                d.plugin
            )));
        }
        let policy = t.policy();
        let age = Duration::from_millis((now_ms() - d.ttl_from_ms).max(0) as u64);
        if age > policy.time_to_live {
            return Some(Record::Dead(
                DeadLetterReason::TimeToLiveExceeded,
                format!(
                    "the event is {}s old; its time-to-live is {}s",
                    age.as_secs(),
                    policy.time_to_live.as_secs()
                ),
            ));
        }
        let gate = self.gates.of(t.name(), policy.max_concurrency);
        let _running = gate.acquire_owned().await;
        if self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        Some(match t.deliver(d.event.clone(), d.attempt).await {
            Verdict::Done => Record::Done,
            Verdict::DeadLetter(why) => Record::Dead(DeadLetterReason::Rejected, why),
            Verdict::Retry(why) if d.attempt >= policy.max_attempts => {
                Record::Dead(DeadLetterReason::MaxDeliveryAttemptsExceeded, why)
            }
            Verdict::Retry(why) => Record::Retry(why),
            Verdict::Postpone(why) => Record::Postponed(why),
        })
    }

    fn settlement(&self, d: &DueDelivery, record: &Record) -> Settlement {
        let id = d.id;
        match record {
            Record::Done => Settlement::Complete(id),
            Record::Retry(why) => Settlement::RetryAt {
                id,
                due_ms: now_ms() + self.backoff(d.attempt).as_millis() as i64,
                error: why.clone(),
            },
            Record::Postponed(why) => {
                tracing::debug!(plugin = %d.plugin, event_id = %d.event.id, "postponed, not counted as an attempt: {why}");
                Settlement::Postpone {
                    id,
                    due_ms: now_ms()
                        + POSTPONE.mul_f64(rand::random_range(0.5..1.5)).as_millis() as i64,
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
        }
    }

    /// Commit `settlement`, trying again with backoff until it is (or the
    /// host shuts down: then the delivery stays as the journal has it).
    async fn record(&self, id: i64, plugin: &str, settlement: Settlement) {
        let mut wait = RECORD_RETRY_FIRST;
        loop {
            let settled = answer(
                |done| self.journal.settle(settlement.clone(), done),
                "an outcome",
            )
            .await;
            match settled {
                Ok(()) => {
                    if self.settle_failing.swap(false, Ordering::SeqCst) {
                        tracing::info!("outcomes are recorded again; claiming resumes");
                    }
                    return;
                }
                Err(e) => {
                    if !self.settle_failing.swap(true, Ordering::SeqCst) {
                        tracing::error!(
                            delivery = id,
                            plugin,
                            "cannot record an outcome, claiming paused until the journal can: {e}"
                        );
                    }
                    if self.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RECORD_RETRY_MAX);
                }
            }
        }
    }

    /// Counters and metrics, once the outcome is committed, so they never
    /// run ahead of what the journal (and its admin API) shows.
    fn count(&self, d: &DueDelivery, record: &Record) {
        let (plugin, event_type) = (d.plugin.clone(), d.event.type_label());
        let latency = || (now_ms() - d.received_at_ms).max(0) as f64 / 1000.0;
        match record {
            Record::Done => {
                self.stats.done.fetch_add(1, Ordering::SeqCst);
                metrics::counter!("gridlet_delivery_success_total", "plugin" => plugin.clone(), "event_type" => event_type)
                    .increment(1);
                metrics::histogram!("gridlet_delivery_latency_seconds", "plugin" => plugin.clone())
                    .record(latency());
            }
            Record::Retry(_) => {
                self.stats.retry.fetch_add(1, Ordering::SeqCst);
            }
            Record::Postponed(_) => {
                self.stats.postponed.fetch_add(1, Ordering::SeqCst);
            }
            Record::Dead(reason, _) => {
                self.stats.dead.fetch_add(1, Ordering::SeqCst);
                metrics::counter!("gridlet_dead_lettered_total", "plugin" => plugin.clone(), "event_type" => event_type, "reason" => reason.as_str())
                    .increment(1);
                metrics::histogram!("gridlet_delivery_latency_seconds", "plugin" => plugin.clone())
                    .record(latency());
            }
        }
        let mut counters = self.counters();
        let c = counters.entry(plugin).or_default();
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
            Record::Postponed(_) => {}
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
