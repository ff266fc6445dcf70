//! The one pass over an event's text: its members as text (nested values
//! skipped, not parsed) and the nesting limit, checked by counting brackets.

use super::{EventError, json_type};
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::ops::Range;

/// The deepest nesting an event may have: serde_json's own limit, which
/// refuses the 128th level. Checked once at ingest, so that everything that
/// reads a stored event later (without a limit) reads what was accepted.
const MAX_DEPTH: usize = 127;

/// Refuse an event nested deeper than [`MAX_DEPTH`], in serde_json's words.
/// Reading the members captures nested values as text without descending
/// into them, so the depth is counted here, in one quick pass over the bytes.
pub(super) fn within_depth(raw: &str, index: usize) -> Result<(), EventError> {
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
pub(super) struct Members<'a> {
    pub(super) id: Option<&'a RawValue>,
    pub(super) event_type: Option<&'a RawValue>,
    pub(super) subject: Option<&'a RawValue>,
    pub(super) topic: Option<&'a RawValue>,
    pub(super) event_time: Option<&'a RawValue>,
    pub(super) data_version: Option<&'a RawValue>,
    pub(super) specversion: Option<&'a RawValue>,
    pub(super) ce_type: Option<&'a RawValue>,
    pub(super) source: Option<&'a RawValue>,
    pub(super) time: Option<&'a RawValue>,
    pub(super) data: Option<&'a RawValue>,
    pub(super) data_base64: bool,
}

impl<'a> Members<'a> {
    /// Read `raw`'s members, or say why it is not an event object.
    pub(super) fn read(raw: &'a str, index: usize) -> Result<Self, EventError> {
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
    pub(super) fn data_at(&self, raw: &str) -> Range<usize> {
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
