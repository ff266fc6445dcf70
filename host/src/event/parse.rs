//! JSON → [`Event`], for both envelopes. An event is read from its own JSON
//! text, which it keeps ([`Event::raw`]): what is stored and handed on is
//! exactly what arrived.

use super::{DocumentError, Event, EventError, MlEvent, Schema, json_type, ml, read_json};
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
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

/// The deepest nesting an event may have: serde_json's own limit, which
/// refuses the 128th level. Checked once at ingest, so that everything that
/// reads a stored event later (without a limit) reads what was accepted.
const MAX_DEPTH: usize = 127;

/// Refuse an event nested deeper than [`MAX_DEPTH`], in serde_json's words.
/// Reading the members captures nested values as text without descending
/// into them, so the depth is counted here, in one quick pass over the bytes.
fn within_depth(raw: &str, index: usize) -> Result<(), EventError> {
    let bytes = raw.as_bytes();
    // Fewer opening brackets than the limit, wherever they are, cannot nest
    // past it: most events end here, after a count the compiler vectorises
    // (`b | 0x20` is `{` for exactly `{` and `[`).
    if bytes
        .iter()
        .map(|&b| usize::from(b | 0x20 == b'{'))
        .sum::<usize>()
        <= MAX_DEPTH
    {
        return Ok(());
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (at, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    let before = &bytes[..at];
                    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
                    let line_start = before
                        .iter()
                        .rposition(|&c| c == b'\n')
                        .map_or(0, |n| n + 1);
                    return Err(EventError {
                        index,
                        id: None,
                        field: None,
                        problem: format!(
                            "is not valid JSON: recursion limit exceeded at line {line} column {}",
                            at + 1 - line_start
                        ),
                    });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The members of an event object that gridlet reads, each as its JSON
/// text, found in one pass over the event (nested values are skipped, not
/// parsed). As in a JSON map, the last of a repeated name wins.
#[derive(Default)]
struct Members<'a> {
    id: Option<&'a RawValue>,
    event_type: Option<&'a RawValue>,
    subject: Option<&'a RawValue>,
    topic: Option<&'a RawValue>,
    event_time: Option<&'a RawValue>,
    data_version: Option<&'a RawValue>,
    specversion: Option<&'a RawValue>,
    ce_type: Option<&'a RawValue>,
    source: Option<&'a RawValue>,
    time: Option<&'a RawValue>,
    data: Option<&'a RawValue>,
    data_base64: bool,
}

impl<'a> Members<'a> {
    /// Read `raw`'s members, or say why it is not an event object.
    fn read(raw: &'a str, index: usize) -> Result<Self, EventError> {
        let invalid = |e: serde_json::Error| EventError {
            index,
            id: None,
            field: None,
            problem: format!("is not valid JSON: {e}"),
        };
        if raw.trim_start().starts_with('{') {
            let mut reader = serde_json::Deserializer::from_str(raw);
            let members = Members::deserialize(&mut reader).map_err(invalid)?;
            reader.end().map_err(invalid)?;
            return Ok(members);
        }
        // Not an object: name what it is (or why it is not JSON).
        let value: Value = serde_json::from_str(raw).map_err(invalid)?;
        Err(EventError {
            index,
            id: None,
            field: None,
            problem: format!("must be a JSON object, found {}", json_type(&value)),
        })
    }

    /// Where `data` is in `raw` (empty when the event has none).
    fn data_at(&self, raw: &str) -> Range<usize> {
        match self.data {
            Some(data) => {
                let start = data.get().as_ptr() as usize - raw.as_ptr() as usize;
                start..start + data.get().len()
            }
            None => 0..0,
        }
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(reader: D) -> Result<Self, D::Error> {
        reader.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut m = Members::default();
        while let Some(name) = map.next_key::<Name>()? {
            let slot = match name {
                Name::Id => &mut m.id,
                Name::EventType => &mut m.event_type,
                Name::Subject => &mut m.subject,
                Name::Topic => &mut m.topic,
                Name::EventTime => &mut m.event_time,
                Name::DataVersion => &mut m.data_version,
                Name::SpecVersion => &mut m.specversion,
                Name::Type => &mut m.ce_type,
                Name::Source => &mut m.source,
                Name::Time => &mut m.time,
                Name::Data => &mut m.data,
                Name::DataBase64 | Name::Other => {
                    m.data_base64 |= name == Name::DataBase64;
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(m)
    }
}

/// A member's name, as far as gridlet reads it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Id,
    EventType,
    Subject,
    Topic,
    EventTime,
    DataVersion,
    SpecVersion,
    Type,
    Source,
    Time,
    Data,
    DataBase64,
    Other,
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(reader: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = Name;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Name, E> {
                Ok(match name {
                    "id" => Name::Id,
                    "eventType" => Name::EventType,
                    "subject" => Name::Subject,
                    "topic" => Name::Topic,
                    "eventTime" => Name::EventTime,
                    "dataVersion" => Name::DataVersion,
                    "specversion" => Name::SpecVersion,
                    "type" => Name::Type,
                    "source" => Name::Source,
                    "time" => Name::Time,
                    "data" => Name::Data,
                    "data_base64" => Name::DataBase64,
                    _ => Name::Other,
                })
            }
        }
        reader.deserialize_identifier(NameVisitor)
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
