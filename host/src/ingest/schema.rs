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
    DeliveryHeaders, DocumentError, Event, EventError, parse_cloud_event, parse_event_grid,
};
use axum::http::HeaderMap;
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
    let mut events = if content_type.starts_with("application/cloudevents-batch") {
        let items = array(json(body)?, "a CloudEvents batch must be a JSON array")?;
        each(&items, parse_cloud_event)?
    } else if content_type.starts_with("application/cloudevents") {
        match json(body)? {
            Value::Array(items) => each(&items, parse_cloud_event)?,
            one => vec![parse_cloud_event(&one, 0).map_err(event_problem)?],
        }
    } else if headers.contains_key("ce-specversion") {
        vec![binary(headers, body)?]
    } else {
        let items = array(
            json(body)?,
            "an Event Grid delivery must be a JSON array of events",
        )?;
        if aeg_type.eq_ignore_ascii_case("SubscriptionValidation")
            || items
                .iter()
                .any(|e| e.get("eventType").and_then(Value::as_str) == Some(VALIDATION_EVENT))
        {
            return validation(&items);
        }
        each(&items, parse_event_grid)?
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

fn array(value: Value, message: &str) -> Result<Vec<Value>, Problem> {
    match value {
        Value::Array(items) if items.is_empty() => Err(Problem::bad_request(
            "empty-batch",
            DocumentError::Empty.to_string(),
        )),
        Value::Array(items) if items.len() > MAX_BATCH => Err(Problem::bad_request(
            "batch-too-large",
            format!(
                "the batch holds {} events; at most {MAX_BATCH}",
                items.len()
            ),
        )),
        Value::Array(items) => Ok(items),
        other => Err(Problem::bad_request(
            "not-an-array",
            format!("{message}, found {}", crate::event::json_type(&other)),
        )),
    }
}

/// All or nothing: the first invalid event refuses the whole body.
fn each(
    items: &[Value],
    parse: fn(&Value, usize) -> Result<Event, EventError>,
) -> Result<Vec<Event>, Problem> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| parse(v, i).map_err(event_problem))
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
    parse_cloud_event(&Value::Object(attributes), 0).map_err(event_problem)
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
