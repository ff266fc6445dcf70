//! Dead letters on JetStream: the `GRIDLET_DEAD` stream (a message per dead
//! letter, its stream sequence the dead letter's id), replays marked in the
//! `gridlet-replays` bucket so a replay is done once unless forced.

use super::message::{Dead, Delivery, delivery_subject};
use super::{DEAD, Inner};
use crate::journal::{DeadLetter, JournalError, Replayed};
use async_nats::jetstream::message::{PublishMessage, StreamMessage};
use async_nats::jetstream::stream::DirectGetErrorKind;
use std::sync::atomic::Ordering;

fn failed(e: impl std::fmt::Display) -> JournalError {
    JournalError(format!("{DEAD}: {e}"))
}

impl Inner {
    /// Dead letters, newest first, optionally one plugin's.
    pub(super) async fn dead_letters(
        &self,
        plugin: Option<String>,
    ) -> Result<Vec<DeadLetter>, JournalError> {
        let subject = match &plugin {
            Some(p) => format!("gridlet.dead.{p}"),
            None => "gridlet.dead.>".to_string(),
        };
        let mut letters = Vec::new();
        let mut next = 1;
        loop {
            let message = match self
                .dead
                .direct_get_next_for_subject(subject.as_str(), Some(next))
                .await
            {
                Ok(m) => m,
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => break,
                Err(e) => return Err(failed(e)),
            };
            next = message.sequence + 1;
            letters.push(self.letter(&message).await?.0);
        }
        letters.reverse();
        Ok(letters)
    }

    /// One dead letter and its event as stored.
    pub(super) async fn dead_letter_event(
        &self,
        id: i64,
    ) -> Result<Option<(DeadLetter, serde_json::Value)>, JournalError> {
        let Some(message) = self.dead_message(id).await? else {
            return Ok(None);
        };
        let (letter, _) = self.letter(&message).await?;
        let event = crate::event::read_json(&String::from_utf8_lossy(&message.payload))
            .unwrap_or(serde_json::Value::Null);
        Ok(Some((letter, event)))
    }

    /// Forget dead letters; how many there were.
    pub(super) async fn purge(&self, ids: Vec<i64>) -> Result<u64, JournalError> {
        let mut purged = 0;
        for id in ids {
            let Ok(seq) = u64::try_from(id) else { continue };
            match self.dead.delete_message(seq).await {
                Ok(true) => {
                    purged += 1;
                    let _ = self.replays.purge(id.to_string()).await;
                }
                Ok(false) => {}
                // Already gone (or never there): nothing to forget.
                Err(e) if e.to_string().contains("no message found") => {}
                Err(e) => return Err(failed(e)),
            }
        }
        Ok(purged)
    }

    /// Deliver dead letters again: a first delivery each, the dead letter
    /// marked replayed (skipped next time unless `force`).
    pub(super) async fn replay(
        &self,
        ids: Vec<i64>,
        now_ms: i64,
        force: bool,
    ) -> Result<Replayed, JournalError> {
        let mut out = Replayed::default();
        for id in ids {
            let Some(message) = self.dead_message(id).await? else {
                continue;
            };
            let (letter, replayed) = self.letter(&message).await?;
            if replayed.is_some() && !force {
                out.skipped += 1;
                continue;
            }
            // A first delivery again, with a whole time-to-live from now
            // (the event keeps its acceptance time). A key of its own, so
            // its retries and dead letter are not taken for the first
            // delivery's repeats by the stream's dedup.
            let first = Delivery::read(Some(&message.headers));
            let delivery = Delivery {
                attempts: 0,
                due_at_ms: 0,
                ttl_from_ms: Some(now_ms),
                last_error: String::new(),
                errors: Vec::new(),
                key: format!("{}.replay-{id}-{now_ms}", first.key),
                ..first
            };
            self.js
                .send_publish(
                    delivery_subject(&letter.plugin, false),
                    PublishMessage::build()
                        .payload(message.payload.clone())
                        .headers(delivery.headers())
                        .message_id(&delivery.key),
                )
                .await
                .map_err(failed)?
                .await
                .map_err(failed)?;
            self.outstanding.fetch_add(1, Ordering::SeqCst);
            self.replays
                .put(id.to_string(), now_ms.to_string().into())
                .await
                .map_err(failed)?;
            out.replayed += 1;
        }
        Ok(out)
    }

    async fn dead_message(&self, id: i64) -> Result<Option<StreamMessage>, JournalError> {
        let Ok(seq) = u64::try_from(id) else {
            return Ok(None);
        };
        match self.dead.direct_get(seq).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(failed(e)),
        }
    }

    /// The dead letter a message holds, and when it was replayed.
    async fn letter(
        &self,
        message: &StreamMessage,
    ) -> Result<(DeadLetter, Option<i64>), JournalError> {
        let id = message.sequence as i64;
        let delivery = Delivery::read(Some(&message.headers));
        let dead = Dead::read(Some(&message.headers));
        let plugin = message
            .subject
            .strip_prefix("gridlet.dead.")
            .unwrap_or_default()
            .to_string();
        let (event_id, topic, event_type) = delivery
            .event(&message.payload)
            .map(|e| (e.id, e.topic, e.event_type))
            .unwrap_or_default();
        let replayed = self
            .replays
            .get(id.to_string())
            .await
            .map_err(failed)?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok());
        Ok((
            DeadLetter {
                id,
                event_id,
                topic,
                event_type,
                plugin,
                reason: dead.reason,
                delivery_attempts: delivery.attempts,
                last_error: delivery.last_error,
                errors: delivery.errors,
                publish_time_ms: delivery.received_at_ms,
                dead_lettered_ms: dead.at_ms,
                replayed_ms: replayed,
            },
            replayed,
        ))
    }
}
