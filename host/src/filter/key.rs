//! Filter keys: which part of an event a filter reads, and the value found
//! there, read straight from the event's own JSON text.
//!
//! Reading the text (not a parsed `serde_json::Value`) keeps every number
//! exactly as sent, so filters compare them as decimals, as Event Grid does
//! (.NET `decimal`): `9007199254740993` stays itself and
//! `0.29999999999999999` stays below `0.3`.

use crate::event::{Event, Schema};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Where a filter key points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// An envelope field or CloudEvents attribute, lower-cased: `id`,
    /// `topic`/`source`, `subject`, `eventtype`/`type`, `eventtime`/`time`,
    /// `dataversion`, `metadataversion`, `specversion`, or any CloudEvents
    /// extension attribute (`comexampleextension1`).
    Attribute(String),
    /// `data.a.b.c`: the path below `data`, matched ignoring case.
    Data(Vec<String>),
}

/// A value a key found, as a filter sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// No such key, or JSON `null`.
    Absent,
    /// One value.
    One(Scalar),
    /// An array's elements.
    Many(Vec<Scalar>),
}

/// A single JSON value, typed for comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A number within .NET decimal's range.
    Number(Decimal),
    /// A string.
    String(String),
    /// `true` or `false`.
    Bool(bool),
    /// Anything else (an object, a number beyond decimal's range, `null`
    /// inside an array): no operator's type.
    Other,
}

impl Key {
    /// Validate a key as written in a manifest.
    pub fn parse(key: &str) -> Result<Self, String> {
        let lower = key.to_ascii_lowercase();
        if let Some(path) = lower.strip_prefix("data.") {
            let path: Vec<String> = key[key.len() - path.len()..]
                .split('.')
                .map(str::to_string)
                .collect();
            if path.iter().any(String::is_empty) {
                return Err(format!("key `{key}` has an empty path segment"));
            }
            return Ok(Key::Data(path));
        }
        // CloudEvents attribute names are lower-case letters and digits; Event
        // Grid's envelope names are the same once lower-cased.
        let valid = !lower.is_empty()
            && lower != "data"
            && lower
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(format!(
                "key `{key}` is neither an envelope field or CloudEvents attribute (letters and \
                 digits: id, topic, subject, eventType, eventTime, dataVersion, source, type, \
                 time, specversion, an extension attribute) nor `data.<path>`"
            ));
        }
        Ok(Key::Attribute(lower))
    }

    /// The value this key finds in `event`.
    pub fn lookup(&self, event: &Event) -> Found {
        let text = |s: &str| Found::One(Scalar::String(s.to_string()));
        match self {
            Key::Attribute(name) => match (event.schema, name.as_str()) {
                (_, "id") => text(&event.id),
                (_, "topic" | "source") => text(&event.topic),
                (_, "eventtype" | "type") => text(&event.event_type),
                (Schema::EventGrid, "subject") => text(&event.subject),
                (Schema::EventGrid, "eventtime" | "time") => text(&event.event_time),
                (Schema::EventGrid, "dataversion") => text(&event.data_version),
                (Schema::EventGrid, "metadataversion") => top_level(event, name),
                // Anything else is not an Event Grid envelope field.
                (Schema::EventGrid, _) => Found::Absent,
                (Schema::CloudEvents, "eventtime") => top_level(event, "time"),
                // A CloudEvent's attributes, extensions included, are its
                // top-level members (binary mode: its `ce-*` headers).
                (Schema::CloudEvents, _) => top_level(event, name),
            },
            Key::Data(path) => {
                let mut at = event.data_json();
                for segment in path {
                    match member(at, segment) {
                        Some(inner) => at = inner,
                        None => return Found::Absent,
                    }
                }
                found(at)
            }
        }
    }
}

/// A member of the event's top-level object, by name without case.
fn top_level(event: &Event, name: &str) -> Found {
    match member(&event.raw, name) {
        Some(text) => found(text),
        None => Found::Absent,
    }
}

/// The text of member `name` of the JSON object `object` (exact spelling
/// first, then ignoring case); `None` when `object` is not an object or
/// has no such member.
fn member<'a>(object: &'a str, name: &str) -> Option<&'a str> {
    if !object.trim_start().starts_with('{') {
        return None;
    }
    let mut reader = serde_json::Deserializer::from_str(object);
    // The text was accepted at ingest, within the parser's depth limit.
    reader.disable_recursion_limit();
    let members = BTreeMap::<String, &RawValue>::deserialize(&mut reader).ok()?;
    members
        .get(name)
        .or_else(|| {
            members
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .map(|v| v.get())
}

/// What a filter sees in a value's text.
fn found(text: &str) -> Found {
    let text = text.trim();
    if text.starts_with('[') {
        let mut reader = serde_json::Deserializer::from_str(text);
        reader.disable_recursion_limit();
        return match Vec::<&RawValue>::deserialize(&mut reader) {
            Ok(items) => Found::Many(items.iter().map(|v| scalar(v.get())).collect()),
            Err(_) => Found::One(Scalar::Other),
        };
    }
    if text == "null" || text.is_empty() {
        return Found::Absent;
    }
    Found::One(scalar(text))
}

fn scalar(text: &str) -> Scalar {
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str(text).map_or(Scalar::Other, Scalar::String),
        Some(b't') if text == "true" => Scalar::Bool(true),
        Some(b'f') if text == "false" => Scalar::Bool(false),
        Some(b'-' | b'0'..=b'9') => decimal(text).map_or(Scalar::Other, Scalar::Number),
        _ => Scalar::Other,
    }
}

/// A JSON number's text as a decimal (rounded to decimal's 28 digits);
/// `None` beyond its range (about ±7.9 × 10^28).
pub fn decimal(text: &str) -> Option<Decimal> {
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_every_digit_sent() {
        assert_eq!(
            scalar("9007199254740993"),
            Scalar::Number(Decimal::from(9_007_199_254_740_993_i64))
        );
        assert!(decimal("0.29999999999999999") < decimal("0.3"));
        assert_eq!(decimal("1.5e3"), decimal("1500"));
        assert_eq!(scalar("1e30"), Scalar::Other, "beyond decimal's range");
    }

    #[test]
    fn members_match_exactly_first_then_without_case() {
        let object = r#"{"Stage": 1, "stage": 2, "other": {"deep": [1, "a"]}}"#;
        assert_eq!(member(object, "stage"), Some("2"));
        assert_eq!(member(object, "STAGE").map(|_| ()), Some(()));
        assert_eq!(
            member(object, "other").and_then(|o| member(o, "Deep")),
            Some(r#"[1, "a"]"#)
        );
        assert_eq!(member("[1]", "x"), None);
        assert_eq!(
            found(r#"[1, "a", null]"#),
            Found::Many(vec![
                Scalar::Number(Decimal::ONE),
                Scalar::String("a".into()),
                Scalar::Other
            ])
        );
    }
}
