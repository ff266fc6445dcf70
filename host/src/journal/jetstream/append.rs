//! Appending a batch on JetStream: dedup by (topic, id), one message per
//! (event, plugin), acknowledged by the stream (replicated) before the
//! webhook answers.

use super::message::{Delivery, delivery_subject, seen_key};
use super::{DELIVERIES, Inner, failed};
use crate::journal::{Appended, JournalError, NewEvent, now_ms};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures_util::future;
use std::collections::HashSet;
use std::sync::atomic::Ordering;

impl Inner {
    /// Store a batch: every (event, plugin) pair a message, acknowledged by
    /// the stream (replicated) before this returns; events seen before are
    /// counted as duplicates and not stored again.
    pub(super) async fn append(&self, batch: Vec<NewEvent>) -> Result<Appended, JournalError> {
        let keys: Vec<String> = batch.iter().map(|n| seen_key(&n.event)).collect();
        let seen = future::join_all(keys.iter().map(|k| self.seen.get(k.clone()))).await;
        let received_at = now_ms();
        let mut appended = Appended::default();
        let mut in_batch = HashSet::new();
        let mut fresh = Vec::new();
        let mut acks: Vec<(usize, PublishAckFuture)> = Vec::new();
        for (i, (new, seen)) in batch.iter().zip(seen).enumerate() {
            let seen = seen.map_err(|e| failed("dedup")(&e))?;
            if seen.is_some() || !in_batch.insert(keys[i].clone()) {
                appended.duplicates += 1;
                continue;
            }
            fresh.push(i);
            let payload = Bytes::copy_from_slice(new.event.raw.as_bytes());
            for plugin in &new.plugins {
                let delivery = Delivery::first(&new.event, plugin, received_at);
                let ack = self
                    .js
                    .send_publish(
                        delivery_subject(plugin, false),
                        PublishMessage::build()
                            .payload(payload.clone())
                            .headers(delivery.headers())
                            .message_id(&delivery.key),
                    )
                    .await
                    .map_err(|e| failed(DELIVERIES)(&e))?;
                acks.push((i, ack));
            }
        }
        let mut stored = vec![0usize; batch.len()];
        let mut repeated = vec![0usize; batch.len()];
        for (i, ack) in acks {
            let ack = ack.await.map_err(|e| failed(DELIVERIES)(&e))?;
            if ack.duplicate {
                repeated[i] += 1;
            } else {
                stored[i] += 1;
            }
        }
        // Remembered only once stored: a host that dies in between leaves
        // the event unseen, and Event Grid's retry stores it (the stream
        // drops the repeated messages within its duplicate window).
        let marks = fresh.iter().map(|&i| {
            self.seen
                .put(keys[i].clone(), received_at.to_string().into())
        });
        for mark in future::join_all(marks).await {
            mark.map_err(|e| failed("dedup")(&e))?;
        }
        for i in fresh {
            if stored[i] == 0 && repeated[i] > 0 {
                appended.duplicates += 1;
            } else {
                appended.events += 1;
                appended.deliveries += stored[i];
            }
        }
        self.outstanding
            .fetch_add(appended.deliveries as i64, Ordering::SeqCst);
        Ok(appended)
    }
}
