//! An event as stored, and read back. Version 2 rows hold the event's own
//! text, exactly as it arrived (the same bytes ingest parsed, so it reads
//! back the same way), its schema and its `aeg-*` headers in columns.
//! Version 1 rows (journals written before) hold one JSON object wrapping
//! the event and the headers.

use crate::event::{self, DeliveryHeaders, Event, Schema};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// One `events` row, as read.
pub(super) struct Row {
    pub(super) format: i64,
    pub(super) schema: String,
    pub(super) body: String,
    pub(super) subscription: Option<String>,
    pub(super) delivery_count: Option<u32>,
    pub(super) data_version_header: Option<String>,
}

/// The columns [`Row`] reads, in order.
pub(super) const ROW_COLUMNS: &str =
    "format, schema, body, subscription, delivery_count, data_version_header";

impl Row {
    /// Read from a statement whose first columns are [`ROW_COLUMNS`].
    pub(super) fn from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            format: r.get(0)?,
            schema: r.get(1)?,
            body: r.get(2)?,
            subscription: r.get(3)?,
            delivery_count: r.get(4)?,
            data_version_header: r.get(5)?,
        })
    }

    /// The event again, or why it cannot be read.
    pub(super) fn restore(self) -> Result<Event, String> {
        if self.body.is_empty() {
            return Err("the event's body was already purged".into());
        }
        if self.format == 1 {
            return restore_v1(&self.body);
        }
        let schema = Schema::from_stored(&self.schema);
        let mut event =
            event::restore(self.body.into(), schema).map_err(|e| format!("stored event: {e}"))?;
        event.delivery = DeliveryHeaders {
            subscription_name: self.subscription,
            delivery_count: self.delivery_count,
            data_version: self.data_version_header,
        };
        Ok(event)
    }
}

/// A version 1 row: `{"event": …, "subscription": …, "deliveryCount": …,
/// "dataVersionHeader": …}`.
fn restore_v1(body: &str) -> Result<Event, String> {
    let v = event::read_json(body).map_err(|e| format!("stored event: {e}"))?;
    let envelope = &v["event"];
    let mut event = if envelope.get("specversion").is_some() {
        event::parse_cloud_event(envelope, 0)
    } else {
        event::parse_event_grid(envelope, 0)
    }
    .map_err(|e| format!("stored event: {e}"))?;
    event.delivery = DeliveryHeaders {
        subscription_name: v["subscription"].as_str().map(str::to_string),
        delivery_count: v["deliveryCount"].as_u64().map(|n| n as u32),
        data_version: v["dataVersionHeader"].as_str().map(str::to_string),
    };
    Ok(event)
}

/// A version 1 row's event, as JSON (for `dead_letter_event`).
pub(super) fn event_json(format: i64, body: &str) -> Value {
    let parsed = event::read_json(body).unwrap_or(Value::Null);
    if format == 1 {
        parsed["event"].clone()
    } else {
        parsed
    }
}

/// Events appended lately, already parsed, by sequence number: most
/// deliveries are claimed moments after their event was appended, and
/// taking it from here saves reading and parsing its text again. Bounded by
/// the bytes the events hold, not by their number, so a few large events
/// cannot make it hold gigabytes; an event larger than a tenth of the bound
/// is not kept at all.
#[derive(Default)]
pub(super) struct Recent {
    by_seq: HashMap<i64, (Arc<Event>, i64)>,
    order: VecDeque<(i64, usize)>,
    bytes: usize,
}

/// What [`Recent`] may hold, in bytes of event text.
pub(super) const RECENT_BYTES: usize = 32 * 1024 * 1024;

impl Recent {
    /// Keep `event`, accepted at `received_at`, evicting the oldest beyond
    /// the bound.
    pub(super) fn keep(&mut self, seq: i64, event: Arc<Event>, received_at: i64) {
        let size = event.size();
        if size > RECENT_BYTES / 10 {
            return;
        }
        while self.bytes + size > RECENT_BYTES {
            let Some((old, old_size)) = self.order.pop_front() else {
                break;
            };
            self.by_seq.remove(&old);
            self.bytes -= old_size;
        }
        self.order.push_back((seq, size));
        self.bytes += size;
        self.by_seq.insert(seq, (event, received_at));
    }

    /// The event of `seq` and when it was accepted, if kept.
    pub(super) fn get(&self, seq: i64) -> Option<(Arc<Event>, i64)> {
        self.by_seq.get(&seq).cloned()
    }

    /// The bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}
