//! The dispatch loop: claim what is due and what fits, start an attempt
//! for each, sleep until the next due time or a wake-up (a new batch, a
//! finished delivery).

use super::{CLAIM_DEPTH, Dispatcher, blocking};
use crate::journal::{DeadLetterReason, Settlement, Slots, now_ms};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long claiming pauses while outcomes cannot be recorded.
const PAUSE_WHILE_FAILING: Duration = Duration::from_millis(500);

impl Dispatcher {
    /// The loop, until shutdown.
    pub(super) async fn run(self: Arc<Self>) {
        let mut last_sweep = Instant::now() - Duration::from_secs(2);
        let mut last_expiry = Instant::now();
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            metrics::gauge!("gridlet_deliveries_pending").set(self.journal.outstanding() as f64);
            // The journal cannot record outcomes (disk full, locked): claim
            // nothing new until it can; running attempts keep retrying
            // theirs.
            if self.settle_failing.load(Ordering::SeqCst) {
                tokio::time::sleep(PAUSE_WHILE_FAILING).await;
                continue;
            }
            let targets = self.targets.current();
            // Deliveries waiting for a plugin with no version serving still
            // have a time-to-live: dead-letter those past it, once a minute.
            if last_expiry.elapsed() >= self.settings.expire_waiting_every {
                last_expiry = Instant::now();
                for t in targets.iter().filter(|t| !t.serving()) {
                    let (journal, name) = (self.journal.clone(), t.name().to_string());
                    let before = now_ms() - t.policy().time_to_live.as_millis() as i64;
                    match blocking(move || journal.expire(&name, before, now_ms())).await {
                        Ok(0) => {}
                        Ok(n) => {
                            self.stats.dead.fetch_add(n, Ordering::SeqCst);
                            tracing::warn!(
                                plugin = t.name(),
                                expired = n,
                                "deliveries outlived their time-to-live waiting for a version to serve"
                            );
                        }
                        Err(e) => tracing::error!(
                            plugin = t.name(),
                            "cannot expire waiting deliveries: {e}"
                        ),
                    }
                }
            }
            // Deliveries of plugins that are not loaded (removed): looked for
            // once a second, as finding them scans every due delivery.
            let other_slots = if last_sweep.elapsed() >= Duration::from_secs(1) {
                last_sweep = Instant::now();
                16
            } else {
                0
            };
            let Some((free, slots, in_flight)) = self.slots(&targets, other_slots) else {
                // Every plugin still has most of its claims queued: claim
                // when a finished delivery frees enough (or `idle_at_most` on).
                drop(targets);
                self.idle(self.settings.idle_at_most).await;
                continue;
            };
            let journal = self.journal.clone();
            // The slots come back for the next due time, below.
            let claim = blocking(move || {
                let claimed = journal.claim_due(now_ms(), free, &slots, other_slots, &in_flight);
                Ok((claimed, slots))
            })
            .await;
            let (claimed, slots) = claim.unwrap_or_else(|e| (Err(e), Vec::new()));
            match claimed {
                Ok(claimed) if !claimed.due.is_empty() || !claimed.unreadable.is_empty() => {
                    // An event that cannot be read back costs only its own
                    // delivery: dead-lettered with the reason.
                    for u in claimed.unreadable {
                        tracing::error!(delivery = u.id, plugin = %u.plugin, "stored event unreadable, dead-lettering this delivery: {}", u.error);
                        let settlement = Settlement::DeadLetter {
                            id: u.id,
                            reason: DeadLetterReason::EventUnreadable,
                            error: u.error,
                            at_ms: now_ms(),
                            attempts: u.attempt - 1,
                        };
                        self.running().claim(u.id, &u.plugin);
                        tokio::spawn(self.clone().record_only(u.id, u.plugin, settlement));
                    }
                    // Each delivery goes to the version serving now, after the
                    // claim: one swapped in while claiming already gets it.
                    let serving = self.targets.current();
                    let attempts = self.targets.attempts();
                    for delivery in claimed.due {
                        self.running().claim(delivery.id, &delivery.plugin);
                        let target = serving
                            .iter()
                            .find(|t| t.name() == delivery.plugin)
                            .cloned();
                        let attempt = self.clone().attempt(delivery, target);
                        match &attempts {
                            Some(pool) => drop(pool.spawn(attempt)),
                            None => drop(tokio::spawn(attempt)),
                        }
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::error!("cannot read due deliveries: {e}"),
            }
            // Hold no plugin version while idle: a replaced one is freed as
            // soon as its last delivery ends.
            drop(targets);
            // Due next among what could be claimed: not deliveries waiting
            // for a version or running now (those wake the loop when they
            // finish), which would have it look again every millisecond.
            let journal = self.journal.clone();
            let next = blocking(move || journal.next_due_ms(&slots))
                .await
                .ok()
                .flatten();
            let most = self.settings.idle_at_most;
            let wait = next.map_or(most, |at| {
                Duration::from_millis((at - now_ms()).max(1) as u64).min(most)
            });
            self.idle(wait).await;
        }
    }

    /// What to claim now: the overall room, each plugin's free slots and
    /// the ids it has in flight, and (for the sweep) every id in flight.
    /// A plugin with fewer than a quarter of its claims free is left out:
    /// it still has most of them queued, and claiming a few at a time
    /// would cost a query that skips every claimed delivery, per finished
    /// one. None when no plugin is worth a query.
    fn slots(
        &self,
        targets: &[Arc<dyn super::Target>],
        other_slots: u32,
    ) -> Option<(usize, Vec<Slots>, Vec<i64>)> {
        let running = self.running();
        let free_of = |t: &Arc<dyn super::Target>| {
            // A declared plugin with no version serving keeps its
            // deliveries: named (so the sweep leaves them alone), never
            // claimed.
            let capacity = if t.serving() {
                t.policy().max_concurrency * CLAIM_DEPTH
            } else {
                0
            };
            let busy = running.per_plugin.get(t.name()).copied().unwrap_or(0);
            let free = capacity.saturating_sub(busy);
            if free >= (capacity / 4).max(1) {
                free
            } else {
                0
            }
        };
        let frees: Vec<u32> = targets.iter().map(free_of).collect();
        if other_slots == 0 && frees.iter().all(|f| *f == 0) {
            return None;
        }
        let mut busy_ids = running.by_plugin();
        let slots = targets
            .iter()
            .zip(frees)
            .map(|(t, free)| Slots {
                plugin: t.name().to_string(),
                free,
                overall: t.policy().overall_concurrency,
                in_flight: busy_ids.remove(t.name()).unwrap_or_default(),
            })
            .collect();
        let free = self
            .settings
            .max_in_flight
            .saturating_sub(running.plugin_of.len());
        // Every id in flight, only for the sweep of removed plugins.
        let in_flight = if other_slots > 0 {
            running.plugin_of.keys().copied().collect()
        } else {
            Vec::new()
        };
        Some((free, slots, in_flight))
    }

    /// Wait for a wake-up (a new batch, a finished delivery, a plugin
    /// version published) or `wait`.
    async fn idle(&self, wait: Duration) {
        let changed = async {
            match &self.targets_changed {
                Some(changed) => changed.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = changed => {}
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
