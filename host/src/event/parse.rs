//! JSON → [`Event`], for both envelopes. An event is read from its own JSON
//! text, which it keeps ([`Event::raw`]): what is stored and handed on is
//! exactly what arrived.

use super::{DocumentError, Event, EventError, MlEvent, Schema, json_type, read_json};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::ops::Range;
use std::sync::Arc;

/// Read one Event Grid schema event from its JSON text (`index` is its
/// position in the body).
///
/// `id`, `eventType` and `subject` are required strings; `topic`,
/// `eventTime` and `dataVersion` default to "". Unknown envelope fields are
/// ignored.
pub fn event_grid_from_text(raw: &str, index: usize) -> Result<Event, EventError> {
    let value = text(raw, index)?;
    event_grid(&value, raw.into(), index)
}

/// Read one CloudEvents 1.0 event, in JSON structured form, from its text.
///
/// `id`, `source`, `type` and `specversion` ("1.0") are required, as the
/// CloudEvents spec says; `subject` and `time` are optional. A `null`
/// attribute counts as absent. `data_base64` (binary data) is refused: the
/// ML events are JSON.
pub fn cloud_event_from_text(raw: &str, index: usize) -> Result<Event, EventError> {
    let value = text(raw, index)?;
    cloud_event(&value, raw.into(), index)
}

/// [`event_grid_from_text`] for an event already parsed (tests, tools).
pub fn parse_event_grid(value: &Value, index: usize) -> Result<Event, EventError> {
    event_grid(value, value.to_string().into(), index)
}

/// [`cloud_event_from_text`] for an event already parsed (tests, tools).
pub fn parse_cloud_event(value: &Value, index: usize) -> Result<Event, EventError> {
    cloud_event(value, value.to_string().into(), index)
}

/// Read an event gridlet stored earlier, in its schema. It was accepted
/// once, so it is read without the parser's depth limit (see
/// [`read_json`]).
pub fn restore(raw: Arc<str>, schema: Schema) -> Result<Event, EventError> {
    let value = read_json(&raw).map_err(|e| EventError {
        index: 0,
        id: None,
        field: None,
        problem: format!("stored event is not valid JSON: {e}"),
    })?;
    match schema {
        Schema::EventGrid => event_grid(&value, raw, 0),
        Schema::CloudEvents => cloud_event(&value, raw, 0),
    }
}

fn text(raw: &str, index: usize) -> Result<Value, EventError> {
    serde_json::from_str(raw).map_err(|e| EventError {
        index,
        id: None,
        field: None,
        problem: format!("is not valid JSON: {e}"),
    })
}

fn event_grid(value: &Value, raw: Arc<str>, index: usize) -> Result<Event, EventError> {
    let envelope = Envelope::new(value, index)?;
    let id = envelope.required("id")?;
    let envelope = envelope.with_id(&id);
    let event_type = envelope.required("eventType")?;
    let subject = envelope.required_allow_empty("subject")?;
    let topic = envelope.optional("topic")?;
    let event_time = envelope.optional("eventTime")?;
    let data_version = envelope.optional("dataVersion")?;
    envelope.build(
        Head {
            id,
            topic,
            subject,
            event_type,
            event_time,
            data_version,
            schema: Schema::EventGrid,
        },
        raw,
    )
}

fn cloud_event(value: &Value, raw: Arc<str>, index: usize) -> Result<Event, EventError> {
    let envelope = Envelope::new(value, index)?;
    let id = envelope.required("id")?;
    let envelope = envelope.with_id(&id);
    let spec = envelope.required("specversion")?;
    if spec != "1.0" {
        return Err(envelope.error("specversion", format!("must be \"1.0\", found {spec:?}")));
    }
    let event_type = envelope.required("type")?;
    let topic = envelope.required("source")?;
    let subject = envelope.optional("subject")?;
    let event_time = envelope.optional("time")?;
    if envelope.map.contains_key("data_base64") {
        return Err(envelope.error(
            "data_base64",
            "binary data is not supported: send the data as JSON in `data`".into(),
        ));
    }
    envelope.build(
        Head {
            id,
            topic,
            subject,
            event_type,
            event_time,
            data_version: String::new(),
            schema: Schema::CloudEvents,
        },
        raw,
    )
}

/// Where an event's `data` member is in its text.
fn data_at(raw: &str) -> Range<usize> {
    #[derive(Deserialize)]
    struct DataOnly<'a> {
        #[serde(borrow, default)]
        data: Option<&'a RawValue>,
    }
    let mut reader = serde_json::Deserializer::from_str(raw);
    reader.disable_recursion_limit();
    match DataOnly::deserialize(&mut reader) {
        Ok(DataOnly { data: Some(data) }) => {
            let start = data.get().as_ptr() as usize - raw.as_ptr() as usize;
            start..start + data.get().len()
        }
        _ => 0..0,
    }
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
struct Envelope<'a> {
    map: &'a Map<String, Value>,
    index: usize,
    id: Option<String>,
}

impl<'a> Envelope<'a> {
    fn new(value: &'a Value, index: usize) -> Result<Self, EventError> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                index,
                id: None,
            }),
            other => Err(EventError {
                index,
                id: None,
                field: None,
                problem: format!("must be a JSON object, found {}", json_type(other)),
            }),
        }
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
    fn required(&self, field: &str) -> Result<String, EventError> {
        let value = self.required_allow_empty(field)?;
        if value.is_empty() {
            return Err(self.error(field, "must not be empty".into()));
        }
        Ok(value)
    }

    /// A required string that may be empty (Event Grid's `subject` is "" on
    /// the validation event, and publishers may send it empty).
    fn required_allow_empty(&self, field: &str) -> Result<String, EventError> {
        match self.map.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Err(self.error(field, "is missing".into())),
            Some(other) => Err(self.error(
                field,
                format!("must be a string, found {}", json_type(other)),
            )),
        }
    }

    fn optional(&self, field: &str) -> Result<String, EventError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.error(
                field,
                format!("must be a string, found {}", json_type(other)),
            )),
        }
    }

    /// Type the payload (`data`) and finish the event, which keeps `raw`.
    fn build(&self, head: Head, raw: Arc<str>) -> Result<Event, EventError> {
        let null = Value::Null;
        let data = self.map.get("data").unwrap_or(&null);
        // Data that does not fit its type's record costs the event only its
        // typed view: Event Grid never retries a 400, so refusing it would
        // lose the whole batch (the untouched data still goes to plugins).
        let (typed, data_problem) = match MlEvent::from_data(&head.event_type, data) {
            Ok(typed) => (typed, None),
            Err((field, problem)) => (MlEvent::Other, Some(format!("`{field}` {problem}"))),
        };
        Ok(Event {
            id: head.id,
            topic: head.topic,
            subject: head.subject,
            event_type: head.event_type,
            event_time: head.event_time,
            data_version: head.data_version,
            schema: head.schema,
            data: typed,
            data_problem,
            data_at: data_at(&raw),
            raw,
            delivery: Default::default(),
        })
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
