//! What the admin API lists of the deliveries on JetStream: messages read
//! straight from the stream (no consumer touched), and per-subject counts.

use super::message::{Delivery, plugin_of};
use super::{DELIVERIES, Inner, failed};
use crate::journal::{JournalError, PendingDelivery};
use futures_util::TryStreamExt;

impl Inner {
    /// Deliveries in the stream, in stream order, optionally one plugin's.
    pub(super) async fn list(
        &self,
        plugin: Option<String>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, JournalError> {
        let subject = match &plugin {
            Some(p) => format!("gridlet.delivery.{p}.*"),
            None => "gridlet.delivery.>".to_string(),
        };
        let mut out = Vec::new();
        let mut next = 1;
        while out.len() < limit {
            let message = match self
                .deliveries
                .direct_get_next_for_subject(subject.as_str(), Some(next))
                .await
            {
                Ok(m) => m,
                Err(e)
                    if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound =>
                {
                    break;
                }
                Err(e) => return Err(failed(DELIVERIES)(&e)),
            };
            next = message.sequence + 1;
            let Some((plugin, _)) = plugin_of(&message.subject) else {
                continue;
            };
            let delivery = Delivery::read(Some(&message.headers));
            let (event_id, event_type) = delivery
                .event(&message.payload)
                .map(|e| (e.id, e.event_type))
                .unwrap_or_default();
            out.push(PendingDelivery {
                id: message.sequence as i64,
                event_id,
                event_type,
                plugin: plugin.to_string(),
                attempts: delivery.attempts,
                due_at_ms: delivery.due_at_ms.max(delivery.received_at_ms),
                last_error: delivery.last_error,
                received_at_ms: delivery.received_at_ms,
            });
        }
        Ok(out)
    }

    /// Per plugin: deliveries never attempted, and retries waiting — the
    /// stream's message count per subject.
    pub(super) async fn counts(&self) -> Result<Vec<(String, u64, u64)>, JournalError> {
        let subjects: Vec<(String, usize)> = self
            .deliveries
            .info_builder()
            .subjects("gridlet.delivery.>")
            .fetch()
            .await
            .map_err(|e| failed(DELIVERIES)(&e))?
            .try_collect()
            .await
            .map_err(|e| failed(DELIVERIES)(&e))?;
        let mut counts: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for (subject, n) in subjects {
            if let Some((plugin, retry)) = plugin_of(&subject) {
                let c = counts.entry(plugin.to_string()).or_default();
                if retry {
                    c.1 += n as u64;
                } else {
                    c.0 += n as u64;
                }
            }
        }
        Ok(counts.into_iter().map(|(p, (n, r))| (p, n, r)).collect())
    }
}
