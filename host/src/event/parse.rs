//! JSON → [`Event`], for both envelopes. An event is read from its own JSON
//! text, which it keeps ([`Event::raw`]): what is stored and handed on is
//! exactly what arrived.

use super::members::{Members, within_depth};
use super::{DocumentError, Event, EventError, MlEvent, Schema, json_type, ml, read_json};
use serde_json::Value;
use serde_json::value::RawValue;
use std::ops::Range;
use std::sync::Arc;

/// Read one Event Grid schema event from its JSON text (`index` is its
/// position in the body).
///
/// `id`, `eventType` and `subject` are required strings; `topic`,
/// `eventTime` and `dataVersion` default to "". Unknown envelope fields are
/// ignored.
pub fn event_grid_from_text(raw: &str, index: usize) -> Result<Event, EventError> {
    within_depth(raw, index)?;
    event_grid(Arc::from(raw), index)
}

/// Read one CloudEvents 1.0 event, in JSON structured form, from its text.
///
/// `id`, `source`, `type` and `specversion` ("1.0") are required, as the
/// CloudEvents spec says; `subject` and `time` are optional. A `null`
/// attribute counts as absent. `data_base64` (binary data) is refused: the
/// ML events are JSON.
pub fn cloud_event_from_text(raw: &str, index: usize) -> Result<Event, EventError> {
    within_depth(raw, index)?;
    cloud_event(Arc::from(raw), index)
}

/// [`event_grid_from_text`] for an event already parsed (tests, tools).
pub fn parse_event_grid(value: &Value, index: usize) -> Result<Event, EventError> {
    event_grid_from_text(&value.to_string(), index)
}

/// [`cloud_event_from_text`] for an event already parsed (tests, tools).
pub fn parse_cloud_event(value: &Value, index: usize) -> Result<Event, EventError> {
    cloud_event_from_text(&value.to_string(), index)
}

/// Read an event gridlet stored earlier, in its schema. It was accepted
/// once, so its depth is not checked again.
pub fn restore(raw: Arc<str>, schema: Schema) -> Result<Event, EventError> {
    match schema {
        Schema::EventGrid => event_grid(raw, 0),
        Schema::CloudEvents => cloud_event(raw, 0),
    }
}

fn event_grid(raw: Arc<str>, index: usize) -> Result<Event, EventError> {
    let members = Members::read(&raw, index)?;
    let envelope = Envelope::new(index);
    let id = envelope.required("id", members.id)?;
    let envelope = envelope.with_id(&id);
    let event_type = envelope.required("eventType", members.event_type)?;
    let subject = envelope.required_allow_empty("subject", members.subject)?;
    let topic = envelope.optional("topic", members.topic)?;
    let event_time = envelope.optional("eventTime", members.event_time)?;
    let data_version = envelope.optional("dataVersion", members.data_version)?;
    let head = Head {
        id,
        topic,
        subject,
        event_type,
        event_time,
        data_version,
        schema: Schema::EventGrid,
    };
    let data_at = members.data_at(&raw);
    Ok(build(head, raw, data_at))
}

fn cloud_event(raw: Arc<str>, index: usize) -> Result<Event, EventError> {
    let members = Members::read(&raw, index)?;
    let envelope = Envelope::new(index);
    let id = envelope.required("id", members.id)?;
    let envelope = envelope.with_id(&id);
    let spec = envelope.required("specversion", members.specversion)?;
    if spec != "1.0" {
        return Err(envelope.error("specversion", format!("must be \"1.0\", found {spec:?}")));
    }
    let event_type = envelope.required("type", members.ce_type)?;
    let topic = envelope.required("source", members.source)?;
    let subject = envelope.optional("subject", members.subject)?;
    let event_time = envelope.optional("time", members.time)?;
    if members.data_base64 {
        return Err(envelope.error(
            "data_base64",
            "binary data is not supported: send the data as JSON in `data`".into(),
        ));
    }
    let head = Head {
        id,
        topic,
        subject,
        event_type,
        event_time,
        data_version: String::new(),
        schema: Schema::CloudEvents,
    };
    let data_at = members.data_at(&raw);
    Ok(build(head, raw, data_at))
}

/// Read a file or body that holds one event or an array of events, in
/// either schema (an object with `specversion` is a CloudEvent). This is what
/// `gridlet run` accepts.
pub fn parse_document(bytes: &[u8]) -> Result<Vec<Event>, DocumentError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| DocumentError::Json(e.to_string()))?;
    let one = |v: &Value, i: usize| {
        if v.get("specversion").is_some() {
            parse_cloud_event(v, i)
        } else {
            parse_event_grid(v, i)
        }
    };
    match &value {
        Value::Array(items) if items.is_empty() => Err(DocumentError::Empty),
        Value::Array(items) => Ok(items
            .iter()
            .enumerate()
            .map(|(i, v)| one(v, i))
            .collect::<Result<_, _>>()?),
        Value::Object(_) => Ok(vec![one(&value, 0)?]),
        other => Err(DocumentError::Shape(json_type(other))),
    }
}

/// An event object being read, with what is needed to name it in errors.
struct Envelope {
    index: usize,
    id: Option<String>,
}

impl Envelope {
    fn new(index: usize) -> Self {
        Self { index, id: None }
    }

    fn with_id(self, id: &str) -> Self {
        Self {
            id: Some(id.to_string()),
            ..self
        }
    }

    fn error(&self, field: &str, problem: String) -> EventError {
        EventError {
            index: self.index,
            id: self.id.clone(),
            field: Some(field.to_string()),
            problem: format!("`{field}` {problem}"),
        }
    }

    /// A required, non-empty string.
    fn required(&self, field: &str, value: Option<&RawValue>) -> Result<String, EventError> {
        let value = self.required_allow_empty(field, value)?;
        if value.is_empty() {
            return Err(self.error(field, "must not be empty".into()));
        }
        Ok(value)
    }

    /// A required string that may be empty (Event Grid's `subject` is "" on
    /// the validation event, and publishers may send it empty).
    fn required_allow_empty(
        &self,
        field: &str,
        value: Option<&RawValue>,
    ) -> Result<String, EventError> {
        self.string(field, value)?
            .ok_or_else(|| self.error(field, "is missing".into()))
    }

    fn optional(&self, field: &str, value: Option<&RawValue>) -> Result<String, EventError> {
        Ok(self.string(field, value)?.unwrap_or_default())
    }

    /// A string member's value; `None` when absent or `null`.
    fn string(&self, field: &str, value: Option<&RawValue>) -> Result<Option<String>, EventError> {
        let Some(text) = value.map(RawValue::get) else {
            return Ok(None);
        };
        match text.as_bytes().first() {
            Some(b'"') => match text.get(1..text.len() - 1) {
                // Most strings hold no escape: their text is their value.
                Some(inner) if !inner.contains('\\') => Ok(Some(inner.to_string())),
                _ => serde_json::from_str(text)
                    .map(Some)
                    .map_err(|e| self.error(field, format!("is not a valid string: {e}"))),
            },
            Some(b'n') => Ok(None),
            _ => Err(self.error(field, format!("must be a string, found {}", raw_type(text)))),
        }
    }
}

/// The JSON type of a value's text (valid JSON), in words.
fn raw_type(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Type the payload (`data`) and finish the event, which keeps `raw`.
fn build(head: Head, raw: Arc<str>, data_at: Range<usize>) -> Event {
    // Only the five ML types have a typed view; the data of any other type
    // is never parsed here.
    let data = if ml::known_type(&head.event_type).is_some() {
        raw.get(data_at.clone())
            .filter(|d| !d.is_empty())
            .and_then(|d| read_json(d).ok())
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    // Data that does not fit its type's record costs the event only its
    // typed view: Event Grid never retries a 400, so refusing it would
    // lose the whole batch (the untouched data still goes to plugins).
    let (typed, data_problem) = match MlEvent::from_data(&head.event_type, &data) {
        Ok(typed) => (typed, None),
        Err((field, problem)) => (MlEvent::Other, Some(format!("`{field}` {problem}"))),
    };
    Event {
        id: head.id,
        topic: head.topic,
        subject: head.subject,
        event_type: head.event_type,
        event_time: head.event_time,
        data_version: head.data_version,
        schema: head.schema,
        data: typed,
        data_problem,
        data_at,
        raw,
        delivery: Default::default(),
    }
}

/// The envelope fields, read.
struct Head {
    id: String,
    topic: String,
    subject: String,
    event_type: String,
    event_time: String,
    data_version: String,
    schema: Schema,
}
