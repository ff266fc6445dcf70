//! RFC 9457 problem bodies: every refusal says what was wrong, in JSON.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A refusal: status plus a `application/problem+json` body.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A short name for the kind of problem (`malformed-json`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// One line for people.
    pub title: &'static str,
    /// The HTTP status, repeated in the body.
    pub status: u16,
    /// What exactly was wrong.
    pub detail: String,
    /// For a problem with one event: its index in the body.
    #[serde(rename = "eventIndex", skip_serializing_if = "Option::is_none")]
    pub event_index: Option<usize>,
    /// For a problem with one event: its id, if it had one.
    #[serde(rename = "eventId", skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// For a problem with one field: its name on the wire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before retrying (503/429), also sent as `Retry-After`.
    #[serde(rename = "retryAfter", skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem with no event or field attached.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            event_index: None,
            event_id: None,
            field: None,
            retry_after: None,
        }
    }

    /// 400, titled after its kind: what was wrong, in one line.
    pub fn bad_request(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind, title(kind), detail)
    }

    /// 401, with no hint of what was expected.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or invalid credentials",
            "this endpoint needs valid credentials",
        )
    }

    /// 503 with `Retry-After`: try again later, nothing was stored.
    pub fn busy(detail: impl Into<String>, retry_after: u64) -> Self {
        let mut p = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "Too busy to accept the events now; nothing was stored",
            detail,
        );
        p.retry_after = Some(retry_after);
        p
    }
}

/// The title of each kind of 400.
fn title(kind: &str) -> &'static str {
    match kind {
        "malformed-json" => "The body is not valid JSON",
        "empty-batch" => "The batch holds no events",
        "batch-too-large" => "The batch holds more events than allowed",
        "not-an-array" => "The body is not a JSON array of events",
        "not-an-object" => "The CloudEvent is not a JSON object",
        "invalid-event" => "An event's envelope is invalid",
        "invalid-validation" => "The subscription validation event is invalid",
        "invalid-header" => "A CloudEvents header cannot be read",
        "unsupported-data" => "The event's data is not JSON",
        "missing-origin" => "The webhook handshake needs WebHook-Request-Origin",
        "bad-state" => "Unknown delivery state",
        "empty-selection" => "Nothing is selected",
        _ => "The request cannot be used",
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
