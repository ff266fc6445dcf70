//! A plugin's deliveries at once across the cluster, bounded by its
//! manifest's `max_concurrency`: stream `GRIDLET_SLOTS` keeps one message
//! per slot (`gridlet.slot.<plugin>.<bound>.<i>`, one message per subject),
//! and a durable consumer per plugin and bound hands each to one host at a
//! time. A host holds a slot (unacknowledged) for as long as it holds the
//! delivery it took it for and gives it back with a nak; a host that dies
//! holding one loses it after the ack wait, like its deliveries.
//!
//! A changed bound is a new set of slots beside the old: slots are never
//! purged, because JetStream then moves the consumer's ack floor past
//! slots still held, and their naks are ignored until the ack wait.
//!
//! Why not the deliveries consumer's `max_ack_pending`: a retry waiting
//! for its time is a message nak'd with a delay, and JetStream counts it
//! as pending until then — a plugin's failing deliveries would hold its
//! bound for hours of Event Grid's schedule. A no-wait fetch the bound
//! cannot fill also stays open on the server (docs/ARCHITECTURE.md).

use super::{FETCH_WAIT, Inner, failed};
use crate::journal::JournalError;
use async_nats::jetstream::message::{Acker, PublishMessage};
use async_nats::jetstream::{AckKind, consumer, stream};
use futures_util::StreamExt;
use std::sync::Arc;

/// The slots stream.
pub(super) const SLOTS: &str = "GRIDLET_SLOTS";

/// A slot this host holds for one delivery.
pub(super) struct Slot(pub(super) Arc<Acker>);

impl Slot {
    /// Give it back at once, for any host.
    pub(super) async fn release(&self) {
        let _ = self.0.ack_with(AckKind::Nak(None)).await;
    }
}

/// The slots stream's shape (`setup` creates it with the others).
pub(super) fn stream(replicas: usize) -> stream::Config {
    stream::Config {
        name: SLOTS.into(),
        subjects: vec!["gridlet.slot.>".into()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        // A slot is its subject: one message each.
        max_messages_per_subject: 1,
        ..Default::default()
    }
}

fn slot_subject(plugin: &str, bound: u32, i: u32) -> String {
    format!("gridlet.slot.{plugin}.{bound}.{i}")
}

impl Inner {
    /// Take up to `n` of `plugin`'s `bound` slots.
    pub(super) async fn take_slots(
        &self,
        plugin: &str,
        bound: u32,
        n: usize,
    ) -> Result<Vec<Slot>, JournalError> {
        let consumer = self.slot_consumer(plugin, bound).await?;
        let mut batch = consumer
            .fetch()
            .max_messages(n.min(bound as usize))
            .messages()
            .await
            .map_err(|e| failed(plugin)(&e))?;
        let mut slots = Vec::new();
        // No server-side bound on this consumer: a no-wait fetch ends at
        // once with what there is.
        while let Ok(Some(message)) = tokio::time::timeout(FETCH_WAIT, batch.next()).await {
            match message {
                Ok(message) => slots.push(Slot(Arc::new(message.split().1))),
                Err(e) => {
                    tracing::debug!(plugin, "slot fetch ended: {e}");
                    break;
                }
            }
        }
        Ok(slots)
    }

    /// `plugin`'s slot consumer for `bound`, its slots made first when this
    /// host has not seen that bound yet (a new plugin, a changed manifest).
    async fn slot_consumer(
        &self,
        plugin: &str,
        bound: u32,
    ) -> Result<consumer::PullConsumer, JournalError> {
        let mut consumers = self.slot_consumers.lock().await;
        if let Some((c, b)) = consumers.get(plugin)
            && *b == bound
        {
            return Ok(c.clone());
        }
        self.make_slots(plugin, bound).await?;
        let consumer = self
            .durable_consumer(
                &self.slots,
                format!("gridlet-slots-{plugin}-{bound}"),
                format!("gridlet.slot.{plugin}.{bound}.*"),
            )
            .await?;
        consumers.insert(plugin.to_string(), (consumer.clone(), bound));
        Ok(consumer)
    }

    /// Make `plugin`'s `bound` slots. A slot is written only if its subject
    /// is empty, so hosts doing this at once never make one twice (a second
    /// write would replace a slot another host holds).
    async fn make_slots(&self, plugin: &str, bound: u32) -> Result<(), JournalError> {
        let what = format!("slots of {plugin}");
        for i in 0..bound {
            let sent = self
                .js
                .send_publish(
                    slot_subject(plugin, bound, i),
                    PublishMessage::build().expected_last_subject_sequence(0),
                )
                .await
                .map_err(|e| failed(&what)(&e))?
                .await;
            if let Err(e) = sent {
                // Made before (by this host before a restart, or another).
                tracing::debug!(plugin, "slot {i}: {e}");
            }
        }
        Ok(())
    }
}
