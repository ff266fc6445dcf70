//! The typed event model: one [`Event`] for both wire schemas (Event Grid and
//! CloudEvents 1.0), with the five Azure ML payloads typed.
//!
//! Tolerant where the wire is messy (see [`ml`]), strict where it matters: an
//! event without `id`, `eventType` or `subject` is refused with an error that
//! names the event and the field.

mod members;
pub mod ml;
mod parse;

pub use ml::{
    DatasetDriftDetected, MlEvent, ModelDeployed, ModelRegistered, Pairs, RunCompleted,
    RunStatusChanged,
};
pub use parse::{
    cloud_event_from_text, event_grid_from_text, parse_cloud_event, parse_document,
    parse_event_grid, restore,
};

use serde_json::Value;
use std::ops::Range;
use std::sync::Arc;

/// Which envelope an event arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// The Event Grid schema (`topic`, `eventType`, `eventTime`, ...).
    EventGrid,
    /// CloudEvents 1.0 (`source`, `type`, `time`, ...).
    CloudEvents,
}

impl Schema {
    /// The name journals store it by.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventGrid => "eventgrid",
            Self::CloudEvents => "cloudevents",
        }
    }

    /// The schema a stored name stands for (Event Grid for any other).
    pub fn from_stored(name: &str) -> Self {
        match name {
            "cloudevents" => Self::CloudEvents,
            _ => Self::EventGrid,
        }
    }
}

/// One event, whichever schema it came in. Its JSON text is held once
/// ([`Event::raw`]): the journal stores exactly those bytes, plugins get the
/// `data` part of them, and filters read their keys from it.
#[derive(Debug, Clone)]
pub struct Event {
    /// Unique per topic; (topic, id) identifies a duplicate.
    pub id: String,
    /// Event Grid `topic` or CloudEvents `source`: the workspace resource id.
    pub topic: String,
    /// The publisher's path, e.g. `models/fraud-gbm:7`.
    pub subject: String,
    /// Event Grid `eventType` or CloudEvents `type`.
    pub event_type: String,
    /// Event Grid `eventTime` or CloudEvents `time`, as sent ("" when absent).
    pub event_time: String,
    /// Event Grid `dataVersion` ("" when absent, always "" for CloudEvents).
    pub data_version: String,
    /// The envelope it arrived in.
    pub schema: Schema,
    /// The payload, typed for the five ML event types; [`MlEvent::Other`]
    /// for other types and for data that does not fit its type's record.
    pub data: MlEvent,
    /// Why an ML event's data has no typed view (it does not fit the record
    /// for its type: a required number missing, tags that are not an
    /// object, ...); `None` when typed, or for types gridlet does not type.
    pub data_problem: Option<String>,
    /// The event's JSON text exactly as received (for CloudEvents binary
    /// mode: the attributes and data as one JSON object).
    pub raw: Arc<str>,
    /// Where `data` is in `raw` (empty when the event has none).
    data_at: Range<usize>,
    /// What Event Grid's `aeg-*` headers said about the request it came in.
    pub delivery: DeliveryHeaders,
}

impl Event {
    /// The payload's JSON text as received (`null` when there is none).
    pub fn data_json(&self) -> &str {
        self.raw
            .get(self.data_at.clone())
            .filter(|d| !d.is_empty())
            .unwrap_or("null")
    }

    /// The payload, parsed (`Value::Null` when there is none): for tools
    /// and tests; the host itself reads only the text.
    pub fn data_value(&self) -> Value {
        read_json(self.data_json()).unwrap_or(Value::Null)
    }

    /// The size of what this event holds, in bytes (its text).
    pub fn size(&self) -> usize {
        self.raw.len()
    }

    /// The event type as a metric label: the short name of a type gridlet
    /// knows, `Other` for any other — label values must not be whatever a
    /// sender chooses, or the metrics grow without bound.
    pub fn type_label(&self) -> &'static str {
        ml::known_type(&self.event_type)
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("Other")
    }

    /// The event type without its namespace (`RunCompleted` for
    /// `Microsoft.MachineLearningServices.RunCompleted`): for labels and logs.
    pub fn short_type(&self) -> &str {
        self.event_type
            .rsplit('.')
            .next()
            .unwrap_or(&self.event_type)
    }
}

/// Event Grid's `aeg-*` request headers, kept with each event of the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryHeaders {
    /// `aeg-subscription-name`: which event subscription sent it.
    pub subscription_name: Option<String>,
    /// `aeg-delivery-count`: Event Grid's own attempt count (0 on the first).
    pub delivery_count: Option<u32>,
    /// `aeg-data-version`.
    pub data_version: Option<String>,
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {index}{}: {problem}", id.as_ref().map(|i| format!(" (id {i})")).unwrap_or_default())]
pub struct EventError {
    /// Position of the event in the body (0 for a single event).
    pub index: usize,
    /// The event's id, when it had one.
    pub id: Option<String>,
    /// The offending field, as named on the wire (`eventType`, `data.modelName`).
    pub field: Option<String>,
    /// What is wrong, in words.
    pub problem: String,
}

/// Why a whole body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The body is not JSON.
    #[error("body is not valid JSON: {0}")]
    Json(String),
    /// The body is JSON but not an event or an array of events.
    #[error("body must be a JSON array of events or a single event object, found {0}")]
    Shape(&'static str),
    /// An array with nothing in it.
    #[error("body is an empty array: there is no event to deliver")]
    Empty,
    /// One of the events is invalid.
    #[error(transparent)]
    Event(#[from] EventError),
}

/// Parse JSON that gridlet itself accepted earlier (a stored event, its
/// payload). Such text is at most as deep as what ingest accepted (a
/// binary-mode CloudEvent adds one level around its data), so the parser's
/// recursion limit — which exists against hostile input, already applied —
/// would only make accepted events unreadable.
pub fn read_json(text: &str) -> serde_json::Result<Value> {
    let mut reader = serde_json::Deserializer::from_str(text);
    reader.disable_recursion_limit();
    let value = serde::Deserialize::deserialize(&mut reader)?;
    reader.end()?;
    Ok(value)
}

/// The JSON type of a value, in words, for error messages.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
