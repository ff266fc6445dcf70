//! A delivery as a JetStream message: the event's text as received is the
//! payload (exactly the bytes ingest parsed, as in the SQLite journal), and
//! what the journal knows about the delivery travels in headers. A retry is
//! a new message with the next attempt's headers, so every message says
//! which attempt it is: JetStream's own delivery count also counts
//! redeliveries after a host died, and an interrupted attempt does not
//! count.

use crate::event::{self, DeliveryHeaders, Event, Schema};
use async_nats::HeaderMap;
use sha2::{Digest, Sha256};

const ATTEMPTS: &str = "Gridlet-Attempts";
const DUE_AT: &str = "Gridlet-Due-At";
const RECEIVED_AT: &str = "Gridlet-Received-At";
/// When the delivery's time-to-live started, where that is not when the
/// event was accepted (a replay's delivery).
const TTL_FROM: &str = "Gridlet-Ttl-From";
const LAST_ERROR: &str = "Gridlet-Last-Error";
const SCHEMA: &str = "Gridlet-Schema";
const KEY: &str = "Gridlet-Key";
const AEG_SUBSCRIPTION: &str = "Gridlet-Aeg-Subscription-Name";
const AEG_DELIVERY_COUNT: &str = "Gridlet-Aeg-Delivery-Count";
const AEG_DATA_VERSION: &str = "Gridlet-Aeg-Data-Version";
const REASON: &str = "Gridlet-Dead-Letter-Reason";
const DEAD_AT: &str = "Gridlet-Dead-Lettered-At";
/// Every failed attempt's error so far, a JSON array of strings (one line).
const ERRORS: &str = "Gridlet-Errors";

/// The longest error text kept in a header (a plugin's error can be long;
/// the full text is in the host's log).
const MAX_ERROR_BYTES: usize = 4096;

/// The subject a plugin's deliveries are published on: `new` for a first
/// attempt, `retry` for later ones (so the stream's per-subject counts tell
/// the two apart without reading messages).
pub(super) fn delivery_subject(plugin: &str, retry: bool) -> String {
    format!(
        "gridlet.delivery.{plugin}.{}",
        if retry { "retry" } else { "new" }
    )
}

/// The plugin (and whether it is a retry) a delivery subject names.
pub(super) fn plugin_of(subject: &str) -> Option<(&str, bool)> {
    let rest = subject.strip_prefix("gridlet.delivery.")?;
    let (plugin, kind) = rest.rsplit_once('.')?;
    Some((plugin, kind == "retry"))
}

/// The subject a plugin's dead letters are kept on.
pub(super) fn dead_subject(plugin: &str) -> String {
    format!("gridlet.dead.{plugin}")
}

/// The event's dedup key: (topic without case, id), hashed to what a
/// JetStream key-value key may hold.
pub(super) fn seen_key(event: &Event) -> String {
    let mut hash = Sha256::new();
    hash.update(event.topic.to_lowercase().as_bytes());
    hash.update([0]);
    hash.update(event.id.as_bytes());
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a delivery message's headers say.
#[derive(Debug, Clone, Default)]
pub(super) struct Delivery {
    /// Attempts made before this message (0 for a first delivery).
    pub attempts: u32,
    /// Not to be attempted before (ms since the epoch; 0: at once).
    pub due_at_ms: i64,
    /// When gridlet accepted the event (ms since the epoch).
    pub received_at_ms: i64,
    /// When its time-to-live started, if not at `received_at_ms` (a
    /// replay's delivery: at the replay).
    pub ttl_from_ms: Option<i64>,
    /// The last attempt's error ("" before any).
    pub last_error: String,
    /// Every failed attempt's error, oldest first (the latest
    /// [`KEPT_ERRORS`](crate::journal::KEPT_ERRORS)).
    pub errors: Vec<String>,
    /// The envelope the event came in.
    pub schema: Option<Schema>,
    /// The event's dedup key and plugin: the stem of every message id
    /// published for this delivery, so a publish repeated after a failure
    /// is dropped by the stream.
    pub key: String,
    /// Event Grid's `aeg-*` headers of the request the event came in.
    pub aeg: DeliveryHeaders,
}

impl Delivery {
    /// A first delivery of `event`, accepted at `received_at_ms`, for `plugin`.
    pub(super) fn first(event: &Event, plugin: &str, received_at_ms: i64) -> Self {
        Self {
            attempts: 0,
            due_at_ms: 0,
            received_at_ms,
            ttl_from_ms: None,
            last_error: String::new(),
            errors: Vec::new(),
            schema: Some(event.schema),
            key: format!("{}.{plugin}", seen_key(event)),
            aeg: event.delivery.clone(),
        }
    }

    /// When its time-to-live started.
    pub(super) fn ttl_from(&self) -> i64 {
        self.ttl_from_ms.unwrap_or(self.received_at_ms)
    }

    /// The headers to publish it with.
    pub(super) fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ATTEMPTS, self.attempts.to_string().as_str());
        h.insert(DUE_AT, self.due_at_ms.to_string().as_str());
        h.insert(RECEIVED_AT, self.received_at_ms.to_string().as_str());
        if let Some(from) = self.ttl_from_ms {
            h.insert(TTL_FROM, from.to_string().as_str());
        }
        h.insert(KEY, self.key.as_str());
        h.insert(SCHEMA, self.schema.unwrap_or(Schema::EventGrid).as_str());
        if !self.last_error.is_empty() {
            h.insert(LAST_ERROR, header_text(&self.last_error).as_str());
        }
        if !self.errors.is_empty() {
            // JSON escapes line breaks: one header line.
            let errors = serde_json::to_string(&self.errors).unwrap_or_default();
            h.insert(ERRORS, errors.as_str());
        }
        if let Some(s) = &self.aeg.subscription_name {
            h.insert(AEG_SUBSCRIPTION, header_text(s).as_str());
        }
        if let Some(n) = self.aeg.delivery_count {
            h.insert(AEG_DELIVERY_COUNT, n.to_string().as_str());
        }
        if let Some(v) = &self.aeg.data_version {
            h.insert(AEG_DATA_VERSION, header_text(v).as_str());
        }
        h
    }

    /// Read from a message's headers (missing ones read as their defaults).
    pub(super) fn read(headers: Option<&HeaderMap>) -> Self {
        let text = |name: &str| {
            headers
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        let number = |name: &str| text(name).and_then(|v| v.parse::<i64>().ok());
        Self {
            attempts: number(ATTEMPTS).unwrap_or(0).clamp(0, u32::MAX as i64) as u32,
            due_at_ms: number(DUE_AT).unwrap_or(0),
            received_at_ms: number(RECEIVED_AT).unwrap_or(0),
            ttl_from_ms: number(TTL_FROM),
            last_error: text(LAST_ERROR).unwrap_or_default(),
            errors: text(ERRORS)
                .and_then(|e| serde_json::from_str(&e).ok())
                .unwrap_or_default(),
            schema: text(SCHEMA).map(|s| Schema::from_stored(&s)),
            key: text(KEY).unwrap_or_default(),
            aeg: DeliveryHeaders {
                subscription_name: text(AEG_SUBSCRIPTION),
                delivery_count: number(AEG_DELIVERY_COUNT)
                    .map(|n| n.clamp(0, u32::MAX as i64) as u32),
                data_version: text(AEG_DATA_VERSION),
            },
        }
    }

    /// The event again from the message's payload, or why it cannot be read.
    pub(super) fn event(&self, payload: &[u8]) -> Result<Event, String> {
        let text = std::str::from_utf8(payload).map_err(|e| format!("stored event: {e}"))?;
        let mut event = event::restore(text.into(), self.schema.unwrap_or(Schema::EventGrid))
            .map_err(|e| format!("stored event: {e}"))?;
        event.delivery = self.aeg.clone();
        Ok(event)
    }
}

/// What a dead letter's headers add to its delivery's.
#[derive(Debug, Clone)]
pub(super) struct Dead {
    /// Event Grid's `deadLetterReason`.
    pub reason: String,
    /// When it was given up (ms since the epoch).
    pub at_ms: i64,
}

impl Dead {
    /// `delivery`'s headers with the dead letter's.
    pub(super) fn headers(&self, delivery: &Delivery) -> HeaderMap {
        let mut h = delivery.headers();
        h.insert(REASON, self.reason.as_str());
        h.insert(DEAD_AT, self.at_ms.to_string().as_str());
        h
    }

    /// Read from a dead letter's headers.
    pub(super) fn read(headers: Option<&HeaderMap>) -> Self {
        let text = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
        Self {
            reason: text(REASON).unwrap_or_default().to_string(),
            at_ms: text(DEAD_AT).and_then(|v| v.parse().ok()).unwrap_or(0),
        }
    }
}

/// Text as a header value may hold it: one line, bounded.
fn header_text(text: &str) -> String {
    text[..text.floor_char_boundary(MAX_ERROR_BYTES)]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_reads_back_from_its_headers() {
        let d = Delivery {
            attempts: 3,
            due_at_ms: 1234,
            received_at_ms: 99,
            ttl_from_ms: Some(150),
            last_error: "line one\r\nline two".into(),
            errors: vec!["first\nof two lines".into(), "second: ünïcode".into()],
            schema: Some(Schema::CloudEvents),
            key: "abc.p".into(),
            aeg: DeliveryHeaders {
                subscription_name: Some("sub".into()),
                delivery_count: Some(2),
                data_version: None,
            },
        };
        let back = Delivery::read(Some(&d.headers()));
        assert_eq!(back.attempts, 3);
        assert_eq!(back.due_at_ms, 1234);
        assert_eq!(back.received_at_ms, 99);
        assert_eq!((back.ttl_from_ms, back.ttl_from()), (Some(150), 150));
        assert_eq!(back.last_error, "line one  line two", "one line");
        assert_eq!(back.errors, d.errors, "as they were, line breaks included");
        assert_eq!(back.schema, Some(Schema::CloudEvents));
        assert_eq!(back.key, "abc.p");
        assert_eq!(back.aeg, d.aeg);
    }

    #[test]
    fn subjects_name_the_plugin_and_the_kind() {
        assert_eq!(
            plugin_of(&delivery_subject("a-b_c", true)),
            Some(("a-b_c", true))
        );
        assert_eq!(plugin_of(&delivery_subject("p", false)), Some(("p", false)));
        assert_eq!(plugin_of("gridlet.dead.p"), None);
    }
}
