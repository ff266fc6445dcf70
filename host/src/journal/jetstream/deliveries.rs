//! Deliveries on JetStream: claiming from each plugin's durable consumer,
//! and settling (ack, a new message for the next attempt, nak with a delay,
//! or a dead letter). Appending is in [`super::append`], listing in
//! [`super::listing`].

use super::message::{Dead, Delivery, dead_subject, delivery_subject};
use super::slots::Slot;
use super::{FETCH_WAIT, Inner, failed};
use crate::journal::{
    Claimed, DueDelivery, JournalError, Settlement, Slots, Unreadable, now_ms, with_error,
};
use async_nats::jetstream::message::{Acker, PublishMessage};
use async_nats::jetstream::{AckKind, consumer};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A delivery this host claimed: how to answer for it, and what to publish
/// again if it is retried or dead-lettered.
pub(super) struct Claim {
    /// Shared with the keep-alive.
    acker: Arc<Acker>,
    plugin: String,
    delivery: Delivery,
    payload: Bytes,
    /// When this host last told the server it is still at it.
    touched: Instant,
    /// The plugin's cluster-wide slot it runs in (none for a delivery of a
    /// plugin this host does not serve, taken only to dead-letter it).
    slot: Option<Slot>,
}

/// What a claim asks of one plugin's consumer.
struct Wanted {
    plugin: String,
    /// How many this host may take.
    free: usize,
    /// The youngest delivery to take (accepted at or before, ms).
    received_by: i64,
    /// The plugin's cluster-wide bound (none for a plugin this host does
    /// not serve).
    bound: Option<u32>,
}

impl Inner {
    /// Take due deliveries from each plugin's consumer, up to its free
    /// slots; with `other_slots`, also from plugins with deliveries in the
    /// stream that no slot names (removed plugins, to dead-letter).
    pub(super) async fn claim(
        &self,
        now: i64,
        limit: usize,
        slots: Vec<Slots>,
        other_slots: u32,
    ) -> Result<Claimed, JournalError> {
        let mut wanted: Vec<Wanted> = slots
            .iter()
            .filter(|s| s.free > 0)
            .map(|s| Wanted {
                plugin: s.plugin.clone(),
                free: s.free as usize,
                received_by: i64::MAX,
                bound: Some(s.overall),
            })
            .collect();
        if other_slots > 0 {
            // Plugins this host does not know, to dead-letter as gone. Not
            // those pushed to the cluster (a host may still be loading
            // one), and only deliveries older than the grace: another host
            // may serve a plugin this one has not loaded yet (younger ones
            // go straight back, for it).
            let mut known: HashSet<String> = slots.iter().map(|s| s.plugin.clone()).collect();
            known.extend(self.plugins.names().await?);
            let grace = self.settings.unknown_plugin_grace.as_millis() as i64;
            for (plugin, _, _) in self.counts().await? {
                if !known.contains(&plugin) {
                    wanted.push(Wanted {
                        plugin,
                        free: other_slots as usize,
                        received_by: now - grace,
                        bound: None,
                    });
                }
            }
        }
        let mut claimed = Claimed::default();
        let mut room = limit;
        for want in wanted {
            if room == 0 {
                break;
            }
            let n = want.free.min(room);
            room -= self.take(&want, n, now, &mut claimed).await?;
        }
        Ok(claimed)
    }

    /// Fetch up to `n` of the plugin's deliveries; those due (and accepted
    /// by `received_by`) are claimed, the others go back with the delay
    /// until they are. With a `bound`, no more than this host gets of the
    /// plugin's cluster-wide slots. Returns how many were claimed.
    async fn take(
        &self,
        want: &Wanted,
        n: usize,
        now: i64,
        claimed: &mut Claimed,
    ) -> Result<usize, JournalError> {
        let plugin = want.plugin.as_str();
        let consumer = self.consumer(plugin).await?;
        let mut slots = match want.bound {
            Some(bound) if n > 0 => Some(self.take_slots(plugin, bound, n).await?),
            _ => None,
        };
        let n = slots.as_ref().map_or(n, Vec::len);
        let taken = if n == 0 {
            Ok(0)
        } else {
            self.fetch_due(&consumer, want, n, now, &mut slots, claimed)
                .await
        };
        // Slots not needed after all go back at once.
        for slot in slots.into_iter().flatten() {
            slot.release().await;
        }
        taken
    }

    /// [`Self::take`] once its slots are held: each claim takes one.
    async fn fetch_due(
        &self,
        consumer: &consumer::PullConsumer,
        want: &Wanted,
        n: usize,
        now: i64,
        slots: &mut Option<Vec<Slot>>,
        claimed: &mut Claimed,
    ) -> Result<usize, JournalError> {
        let (plugin, received_by) = (want.plugin.as_str(), want.received_by);
        let mut batch = consumer
            .fetch()
            .max_messages(n)
            .messages()
            .await
            .map_err(|e| failed(plugin)(&e))?;
        let mut taken = 0;
        // A fetch ends at once with what there is; should the server keep
        // it open, do not wait for messages that will not come.
        while let Ok(Some(message)) = tokio::time::timeout(FETCH_WAIT, batch.next()).await {
            let message = match message {
                Ok(m) => m,
                // The request ended early: keep what came.
                Err(e) if taken > 0 => {
                    tracing::debug!(plugin, "fetch ended: {e}");
                    break;
                }
                Err(e) => return Err(failed(plugin)(&e)),
            };
            let Ok(info) = message.info() else { continue };
            let id = info.stream_sequence as i64;
            let (message, acker) = message.split();
            let delivery = Delivery::read(message.headers.as_ref());
            // Not before it is due: back until then.
            if delivery.due_at_ms > now {
                let wait = Duration::from_millis((delivery.due_at_ms - now) as u64);
                acker
                    .ack_with(AckKind::Nak(Some(wait)))
                    .await
                    .map_err(|e| failed(plugin)(&e))?;
                continue;
            }
            // Too young to be swept: back at once, for a host that has the
            // plugin (a delay would hold it from that host too).
            if delivery.received_at_ms > received_by {
                acker
                    .ack_with(AckKind::Nak(None))
                    .await
                    .map_err(|e| failed(plugin)(&e))?;
                continue;
            }
            let attempt = delivery.attempts + 1;
            match delivery.event(&message.payload) {
                Ok(event) => claimed.due.push(DueDelivery {
                    id,
                    event: Arc::new(event),
                    plugin: plugin.to_string(),
                    attempt,
                    received_at_ms: delivery.received_at_ms,
                    ttl_from_ms: delivery.ttl_from(),
                }),
                Err(error) => claimed.unreadable.push(Unreadable {
                    id,
                    plugin: plugin.to_string(),
                    attempt,
                    error,
                }),
            }
            self.lock_claims().insert(
                id,
                Claim {
                    acker: Arc::new(acker),
                    plugin: plugin.to_string(),
                    delivery,
                    payload: message.payload,
                    touched: Instant::now(),
                    slot: slots.as_mut().and_then(Vec::pop),
                },
            );
            taken += 1;
        }
        Ok(taken)
    }

    /// `plugin`'s durable consumer, bound (and created when missing) once.
    async fn consumer(&self, plugin: &str) -> Result<consumer::PullConsumer, JournalError> {
        let mut consumers = self.consumers.lock().await;
        if let Some(c) = consumers.get(plugin) {
            return Ok(c.clone());
        }
        let consumer = self
            .durable_consumer(
                &self.deliveries,
                format!("gridlet-{plugin}"),
                format!("gridlet.delivery.{plugin}.*"),
            )
            .await?;
        consumers.insert(plugin.to_string(), consumer.clone());
        Ok(consumer)
    }

    /// The durable pull consumer `name` on `stream` for `filter`, created
    /// when missing: every host binds the same one, and JetStream hands each
    /// message to one of them, again to another only after the ack wait.
    pub(super) async fn durable_consumer(
        &self,
        stream: &async_nats::jetstream::stream::Stream,
        name: String,
        filter: String,
    ) -> Result<consumer::PullConsumer, JournalError> {
        let config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: filter,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.settings.ack_wait,
            // Retries are new messages: redelivery is only for a host that
            // died holding one.
            max_deliver: -1,
            // Hosts bound themselves (claims; the cluster's slots); a server
            // bound would leave a fetch it cannot fill open on the server
            // and count delayed retries against it.
            max_ack_pending: -1,
            ..Default::default()
        };
        stream
            .get_or_create_consumer(&name, config)
            .await
            .map_err(|e| failed(&name)(&e))
    }

    fn lock_claims(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<i64, Claim>> {
        self.claims.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record an attempt. The claim is kept if the server cannot be told,
    /// so the dispatcher's next try finds it again.
    pub(super) async fn settle(&self, settlement: Settlement) -> Result<(), JournalError> {
        let id = match &settlement {
            Settlement::Complete(id)
            | Settlement::RetryAt { id, .. }
            | Settlement::Postpone { id, .. }
            | Settlement::DeadLetter { id, .. } => *id,
        };
        let Some(claim) = self.lock_claims().remove(&id) else {
            return Err(JournalError(format!(
                "delivery {id} is not claimed by this host"
            )));
        };
        match self.settle_claim(&claim, settlement).await {
            Ok(done) => {
                if done {
                    self.outstanding.fetch_sub(1, Ordering::SeqCst);
                }
                if let Some(slot) = &claim.slot {
                    slot.release().await;
                }
                Ok(())
            }
            Err(e) => {
                self.lock_claims().insert(id, claim);
                Err(e)
            }
        }
    }

    /// Returns whether the delivery is done (gone from the stream).
    async fn settle_claim(
        &self,
        claim: &Claim,
        settlement: Settlement,
    ) -> Result<bool, JournalError> {
        let plugin = claim.plugin.as_str();
        match settlement {
            Settlement::Complete(_) => {}
            Settlement::RetryAt { due_ms, error, .. } => {
                let next = Delivery {
                    attempts: claim.delivery.attempts + 1,
                    due_at_ms: due_ms,
                    errors: with_error(claim.delivery.errors.clone(), &error),
                    last_error: error,
                    ..claim.delivery.clone()
                };
                let id = format!("{}.{}", next.key, next.attempts);
                self.publish(delivery_subject(plugin, true), next.headers(), claim, &id)
                    .await?;
            }
            Settlement::Postpone { due_ms, .. } => {
                let wait = Duration::from_millis((due_ms - now_ms()).max(0) as u64);
                claim
                    .acker
                    .ack_with(AckKind::Nak(Some(wait)))
                    .await
                    .map_err(|e| failed(plugin)(&e))?;
                return Ok(false);
            }
            Settlement::DeadLetter {
                reason,
                error,
                at_ms,
                attempts,
                ..
            } => {
                let letter = Delivery {
                    attempts,
                    errors: with_error(claim.delivery.errors.clone(), &error),
                    last_error: error,
                    ..claim.delivery.clone()
                };
                let dead = Dead {
                    reason: reason.as_str().to_string(),
                    at_ms,
                };
                let id = format!("{}.dead.{attempts}", letter.key);
                self.publish(dead_subject(plugin), dead.headers(&letter), claim, &id)
                    .await?;
            }
        }
        claim
            .acker
            .double_ack()
            .await
            .map_err(|e| failed(plugin)(&e))?;
        Ok(true)
    }

    /// Publish the claim's event on `subject` with `headers`, and wait for
    /// the stream to have it. `id` makes a repeat (after a failed ack) a
    /// no-op.
    async fn publish(
        &self,
        subject: String,
        headers: async_nats::HeaderMap,
        claim: &Claim,
        id: &str,
    ) -> Result<(), JournalError> {
        self.js
            .send_publish(
                subject.clone(),
                PublishMessage::build()
                    .payload(claim.payload.clone())
                    .headers(headers)
                    .message_id(id),
            )
            .await
            .map_err(|e| failed(&subject)(&e))?
            .await
            .map_err(|e| failed(&subject)(&e))?;
        Ok(())
    }

    /// Give back every delivery this host claimed and did not settle (a nak
    /// without delay: another host, or this one restarted, takes it now).
    pub(super) async fn release_claims(&self) {
        let claims: Vec<Claim> = self.lock_claims().drain().map(|(_, c)| c).collect();
        for claim in claims {
            let _ = claim.acker.ack_with(AckKind::Nak(None)).await;
            if let Some(slot) = &claim.slot {
                slot.release().await;
            }
        }
    }

    /// Dead-letter `plugin`'s deliveries accepted before
    /// `received_before_ms` (the plugin has no version serving, so nothing
    /// else takes them); the others go back at once.
    pub(super) async fn expire(
        &self,
        plugin: &str,
        received_before_ms: i64,
        now: i64,
    ) -> Result<u64, JournalError> {
        let mut claimed = Claimed::default();
        let everything = Wanted {
            plugin: plugin.to_string(),
            free: 1000,
            received_by: i64::MAX,
            bound: None,
        };
        self.take(&everything, 1000, i64::MAX, &mut claimed).await?;
        let mut expired = 0;
        let ids = claimed
            .due
            .iter()
            .map(|d| (d.id, d.ttl_from_ms, d.attempt))
            .chain(claimed.unreadable.iter().map(|u| (u.id, 0, u.attempt)));
        for (id, ttl_from, attempt) in ids.collect::<Vec<_>>() {
            let settlement = if ttl_from < received_before_ms {
                expired += 1;
                Settlement::DeadLetter {
                    id,
                    reason: crate::journal::DeadLetterReason::TimeToLiveExceeded,
                    error: format!("plugin `{plugin}` had no version serving"),
                    at_ms: now,
                    attempts: attempt - 1,
                }
            } else {
                Settlement::Postpone { id, due_ms: 0 }
            };
            self.settle(settlement).await?;
        }
        Ok(expired)
    }
}

/// Tell the server, for every delivery held longer than a third of the ack
/// wait, that this host is still at it — so a long delivery is not handed
/// to another host — for as long as the journal lives.
pub(super) async fn keep_claims_alive(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let every = inner.settings.ack_wait / 3;
        // The delivery and its slot.
        let ackers: Vec<Arc<Acker>> = {
            let mut claims = inner.lock_claims();
            claims
                .values_mut()
                .filter(|c| c.touched.elapsed() >= every)
                .flat_map(|c| {
                    c.touched = Instant::now();
                    std::iter::once(c.acker.clone()).chain(c.slot.as_ref().map(|s| s.0.clone()))
                })
                .collect()
        };
        drop(inner);
        for acker in ackers {
            let _ = acker.ack_with(AckKind::Progress).await;
        }
        tokio::time::sleep(every.max(Duration::from_millis(100))).await;
    }
}
