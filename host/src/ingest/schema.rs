//! A request body → what it asks for: a subscription handshake or events,
//! in whichever of the four shapes Event Grid may use.
//!
//! | shape | how it is recognised | body |
//! |---|---|---|
//! | Event Grid | anything else | a JSON array of events |
//! | CloudEvents structured | `Content-Type: application/cloudevents+json` | one event (an array is tolerated) |
//! | CloudEvents batched | `Content-Type: application/cloudevents-batch+json` | an array of events |
//! | CloudEvents binary | a `ce-specversion` header | the data; attributes in `ce-*` headers |

// A `Problem` is the response to a refused request: returning it by value on
// this cold path is simpler than boxing it.
#![allow(clippy::result_large_err)]

use super::problem::Problem;
use crate::event::{
    DeliveryHeaders, DocumentError, Event, EventError, cloud_event_from_text, event_grid_from_text,
};
use axum::http::HeaderMap;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Most events in one request, as Event Grid batches them.
pub const MAX_BATCH: usize = 5_000;

/// The event type of Event Grid's validation handshake.
pub const VALIDATION_EVENT: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

/// What a request asks for.
#[derive(Debug)]
pub enum Request {
    /// Event Grid's subscription validation handshake.
    Validation {
        /// The code to echo back.
        code: String,
        /// The URL for manual validation, when sent.
        url: Option<String>,
    },
    /// Event Grid says a subscription was deleted: nothing to deliver.
    Deletion,
    /// Events to deliver.
    Events(Vec<Event>),
}

/// Read the body according to its headers.
pub fn read(headers: &HeaderMap, body: &[u8]) -> Result<Request, Problem> {
    let content_type = header(headers, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let aeg_type = header(headers, "aeg-event-type").unwrap_or_default();
    if aeg_type.eq_ignore_ascii_case("SubscriptionDeletion") {
        return Ok(Request::Deletion);
    }
    // Each event is read from its own text, which it keeps: what the
    // journal stores is exactly what arrived, and reads back the same way.
    let mut events = if content_type.starts_with("application/cloudevents-batch") {
        let items = array(body, "a CloudEvents batch must be a JSON array")?;
        each(&items, cloud_event_from_text)?
    } else if content_type.starts_with("application/cloudevents") {
        match raw(body)? {
            Shape::Array(items) => each(&items, cloud_event_from_text)?,
            Shape::Object(one) => vec![cloud_event_from_text(one, 0).map_err(event_problem)?],
            Shape::Other(what) => {
                return Err(Problem::bad_request(
                    "not-an-object",
                    format!("a CloudEvent must be a JSON object, found {what}"),
                ));
            }
        }
    } else if headers.contains_key("ce-specversion") {
        vec![binary(headers, body)?]
    } else {
        let items = array(
            body,
            "an Event Grid delivery must be a JSON array of events",
        )?;
        let validating = aeg_type.eq_ignore_ascii_case("SubscriptionValidation")
            || items.iter().any(|e| e.get().contains(VALIDATION_EVENT));
        if validating {
            let parsed: Vec<Value> = items
                .iter()
                .filter_map(|e| serde_json::from_str(e.get()).ok())
                .collect();
            if aeg_type.eq_ignore_ascii_case("SubscriptionValidation")
                || parsed
                    .iter()
                    .any(|e| e.get("eventType").and_then(Value::as_str) == Some(VALIDATION_EVENT))
            {
                return validation(&parsed);
            }
        }
        each(&items, event_grid_from_text)?
    };
    let delivery = DeliveryHeaders {
        subscription_name: header(headers, "aeg-subscription-name").map(str::to_string),
        delivery_count: header(headers, "aeg-delivery-count").and_then(|v| v.trim().parse().ok()),
        data_version: header(headers, "aeg-data-version").map(str::to_string),
    };
    for event in &mut events {
        event.delivery = delivery.clone();
    }
    Ok(Request::Events(events))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn json(body: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::bad_request(
            "malformed-json",
            DocumentError::Json(e.to_string()).to_string(),
        )
    })
}

/// A body read just enough to find its events' texts.
enum Shape<'a> {
    Array(Vec<&'a RawValue>),
    Object(&'a str),
    Other(&'static str),
}

/// Check the body is JSON (the whole of it, so malformed input is refused
/// before anything else) and split it into its events' texts.
fn raw(body: &[u8]) -> Result<Shape<'_>, Problem> {
    let malformed = |e: serde_json::Error| {
        Problem::bad_request(
            "malformed-json",
            DocumentError::Json(e.to_string()).to_string(),
        )
    };
    // An array (Event Grid's shape) is split in the pass that checks it.
    if body.trim_ascii_start().first() == Some(&b'[') {
        return serde_json::from_slice(body)
            .map(Shape::Array)
            .map_err(malformed);
    }
    let whole: &RawValue = serde_json::from_slice(body).map_err(malformed)?;
    let text = whole.get();
    Ok(match text.as_bytes().first() {
        Some(b'{') => Shape::Object(text),
        _ => Shape::Other(crate::event::json_type(
            &serde_json::from_str(text).unwrap_or(Value::Null),
        )),
    })
}

fn array<'a>(body: &'a [u8], message: &str) -> Result<Vec<&'a RawValue>, Problem> {
    match raw(body)? {
        Shape::Array(items) if items.is_empty() => Err(Problem::bad_request(
            "empty-batch",
            DocumentError::Empty.to_string(),
        )),
        Shape::Array(items) if items.len() > MAX_BATCH => Err(Problem::bad_request(
            "batch-too-large",
            format!(
                "the batch holds {} events; at most {MAX_BATCH}",
                items.len()
            ),
        )),
        Shape::Array(items) => Ok(items),
        Shape::Object(_) => Err(Problem::bad_request(
            "not-an-array",
            format!("{message}, found an object"),
        )),
        Shape::Other(what) => Err(Problem::bad_request(
            "not-an-array",
            format!("{message}, found {what}"),
        )),
    }
}

/// All or nothing: the first invalid event refuses the whole body.
fn each(
    items: &[&RawValue],
    parse: fn(&str, usize) -> Result<Event, EventError>,
) -> Result<Vec<Event>, Problem> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| parse(v.get(), i).map_err(event_problem))
        .collect()
}

fn event_problem(e: EventError) -> Problem {
    let mut p = Problem::bad_request("invalid-event", e.to_string());
    p.event_index = Some(e.index);
    p.event_id = e.id;
    p.field = e.field;
    p
}

fn validation(items: &[Value]) -> Result<Request, Problem> {
    let data = items.first().and_then(|e| e.get("data"));
    let code = data
        .and_then(|d| d.get("validationCode"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            let mut p = Problem::bad_request(
                "invalid-validation",
                "event 0: the validation event has no string `data.validationCode`",
            );
            p.event_index = Some(0);
            p.field = Some("data.validationCode".into());
            p
        })?;
    let url = data
        .and_then(|d| d.get("validationUrl"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Request::Validation {
        code: code.to_string(),
        url,
    })
}

/// CloudEvents binary mode: attributes from `ce-*` headers (percent-decoded,
/// quoted strings unwrapped, invalid UTF-8 refused), `datacontenttype` from
/// `Content-Type`, and the body as the data.
fn binary(headers: &HeaderMap, body: &[u8]) -> Result<Event, Problem> {
    let mut attributes = Map::new();
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let raw = std::str::from_utf8(value.as_bytes()).map_err(|_| {
            Problem::bad_request(
                "invalid-header",
                format!("header `{name}` is not valid UTF-8"),
            )
        })?;
        attributes.insert(
            attribute.to_string(),
            Value::String(decode_header(name.as_str(), raw)?),
        );
    }
    let content_type = header(headers, "content-type").unwrap_or("application/json");
    let is_json = {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        media.ends_with("/json") || media.ends_with("+json")
    };
    let data = if body.is_empty() {
        Value::Null
    } else if is_json {
        json(body)?
    } else {
        return Err(Problem::bad_request(
            "unsupported-data",
            format!("binary-mode data must be JSON; Content-Type is `{content_type}`"),
        ));
    };
    attributes.insert(
        "datacontenttype".into(),
        Value::String(content_type.to_string()),
    );
    attributes.insert("data".into(), data);
    // The event's text is the attributes and the data as one object: one
    // level deeper than the body, so a body at the parser's depth limit is
    // refused here rather than stored and found unreadable later.
    let text = Value::Object(attributes).to_string();
    cloud_event_from_text(&text, 0).map_err(event_problem)
}

/// Undo RFC 7230 quoting, then percent-decoding (CloudEvents HTTP binding 3.1.3.2).
fn decode_header(name: &str, raw: &str) -> Result<String, Problem> {
    let unquoted = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => raw.to_string(),
    };
    percent_encoding::percent_decode_str(&unquoted)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            Problem::bad_request(
                "invalid-header",
                format!("header `{name}` percent-decodes to invalid UTF-8"),
            )
        })
}
