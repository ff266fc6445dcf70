//! The webhook: Event Grid's (and CloudEvents') side of gridlet.
//!
//! One POST handler is the hot path — auth, size, shape, topic, then the
//! batch goes to the [`Intake`] and is answered 200 only once it took it.
//! OPTIONS answers the CloudEvents abuse-protection handshake. Everything
//! refused gets a precise status and a problem body, and reaches no plugin.

pub mod auth;
pub mod problem;
pub mod sas;
pub mod schema;

pub use auth::{Auth, EntraAuth, SecretAuth};
pub use problem::Problem;

use crate::event::Event;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use schema::Request;
use std::sync::Arc;

/// Where accepted events go: dispatch implements it, over the journal.
#[async_trait::async_trait]
pub trait Intake: Send + Sync + 'static {
    /// Take every event of a batch, or none. Returns how many deliveries
    /// (event, plugin) it made.
    async fn accept(&self, events: Vec<Event>) -> Result<usize, Busy>;
}

/// The intake cannot take the batch now; the sender should retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// Why, for the problem body.
    pub reason: String,
    /// Seconds to wait.
    pub retry_after: u64,
}

/// How the webhook behaves.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Where Event Grid POSTs (default `/api/events`).
    pub webhook_path: String,
    /// Largest body accepted, in bytes (default 4 MiB); larger is 413.
    pub body_limit: usize,
    /// Time a sender has to send the whole body (default 30 s); slower is 408.
    pub body_timeout: std::time::Duration,
    /// Topics (workspace resource ids) events may come from, compared
    /// without case; empty allows every topic.
    pub allowed_topics: Vec<String>,
    /// Origins granted in the OPTIONS handshake (default `eventgrid.azure.net`).
    pub allowed_origins: Vec<String>,
    /// Requests per minute granted in the handshake; `None` is `*`.
    pub allowed_rate: Option<u32>,
    /// Who may deliver.
    pub auth: Auth,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            webhook_path: "/api/events".into(),
            body_limit: 4 * 1024 * 1024,
            body_timeout: std::time::Duration::from_secs(30),
            allowed_topics: Vec::new(),
            allowed_origins: vec!["eventgrid.azure.net".into()],
            allowed_rate: None,
            auth: Auth::default(),
        }
    }
}

struct Webhook {
    settings: IngestSettings,
    intake: Arc<dyn Intake>,
}

/// The webhook's routes: POST and OPTIONS on the webhook path, and `/healthz`.
pub fn router(settings: IngestSettings, intake: Arc<dyn Intake>) -> Router {
    let path = settings.webhook_path.clone();
    let state = Arc::new(Webhook { settings, intake });
    Router::new()
        .route(&path, post(deliver).options(handshake))
        .with_state(state)
        .merge(health_router())
}

/// `/healthz` alone: the process answers.
pub fn health_router() -> Router {
    Router::new().route(
        "/healthz",
        get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
    )
}

/// POST: the hot path.
async fn deliver(
    State(hook): State<Arc<Webhook>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let settings = &hook.settings;
    if !settings.auth.check(uri.query(), &headers).await {
        return refused("auth", Problem::unauthorized());
    }
    let body = match read_body(body, &headers, settings.body_limit, settings.body_timeout).await {
        Ok(body) => body,
        Err(problem) if problem.status == 408 => return refused("timeout", problem),
        Err(problem) => return refused("size", problem),
    };
    let events = match schema::read(&headers, &body) {
        Ok(Request::Events(events)) => events,
        Ok(Request::Validation { code, url }) => {
            tracing::info!(
                validation_url = url.as_deref().unwrap_or("-"),
                subscription = headers
                    .get("aeg-subscription-name")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-"),
                "answered Event Grid's subscription validation"
            );
            return axum::Json(serde_json::json!({ "validationResponse": code })).into_response();
        }
        Ok(Request::Deletion) => {
            tracing::info!("Event Grid reports the subscription was deleted");
            return StatusCode::OK.into_response();
        }
        Err(problem) => return refused("malformed", problem),
    };
    if let Some(problem) = forbidden_topic(&settings.allowed_topics, &events) {
        return refused("topic", problem);
    }
    let count = events.len();
    let untyped: Vec<(&'static str, String)> = events
        .iter()
        .filter_map(|e| Some((e.type_label(), e.data_problem.clone()?)))
        .collect();
    match hook.intake.accept(events).await {
        Ok(deliveries) => {
            untyped_events(untyped);
            axum::Json(serde_json::json!({ "accepted": count, "deliveries": deliveries }))
                .into_response()
        }
        Err(busy) => refused("busy", Problem::busy(busy.reason, busy.retry_after)),
    }
}

/// Events accepted without their typed view: counted by type, and logged
/// once per type (the first one's reason), so a publisher whose payloads
/// changed shape is visible without a line per event.
fn untyped_events(untyped: Vec<(&'static str, String)>) {
    static LOGGED: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    for (event_type, problem) in untyped {
        metrics::counter!("gridlet_events_untyped_total", "event_type" => event_type).increment(1);
        let mut logged = LOGGED.lock().unwrap_or_else(|e| e.into_inner());
        if !logged.contains(&event_type) {
            logged.push(event_type);
            tracing::warn!(
                event_type,
                "accepted an event whose data does not fit its typed record ({problem}); \
                 plugins get it with data `other` and the untouched data-json \
                 (logged once per type; counted in gridlet_events_untyped_total)"
            );
        }
    }
}

/// Count a refused request by reason, and answer it.
fn refused(reason: &'static str, problem: Problem) -> Response {
    metrics::counter!("gridlet_requests_rejected_total", "reason" => reason).increment(1);
    problem.into_response()
}

/// Read at most `limit` bytes within `deadline`; more is 413 (refused from
/// `Content-Length` before reading when the sender declares it), slower is
/// 408 (which Event Grid retries).
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<axum::body::Bytes, Problem> {
    let too_large = |size: String| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "The request body is larger than this webhook accepts",
            format!("the body is {size}; the limit is {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(declared) = declared
        && declared > limit
    {
        return Err(too_large(format!("{declared} bytes")));
    }
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await {
        Ok(read) => read.map_err(|_| too_large("over the limit".into())),
        Err(_) => Err(Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "body-timeout",
            "The request body did not arrive in time",
            format!(
                "the body was not complete within {} ms",
                deadline.as_millis()
            ),
        )),
    }
}

/// 403 for the first event whose topic is not allowed.
fn forbidden_topic(allowed: &[String], events: &[Event]) -> Option<Problem> {
    let (index, event) = events
        .iter()
        .enumerate()
        .find(|(_, e)| !topic_allowed(allowed, &e.topic))?;
    tracing::warn!(topic = %event.topic, "refused events from a topic that is not allowed");
    let mut p = Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden-topic",
        "Events from this topic are not accepted here",
        format!(
            "event {index}: topic `{}` is not in allowed_topics",
            event.topic
        ),
    );
    p.event_index = Some(index);
    p.event_id = Some(event.id.clone());
    p.field = Some("topic".into());
    Some(p)
}

/// Is `topic` one of `allowed` (compared without case; none allows all)?
/// The one rule for every source of events.
pub fn topic_allowed(allowed: &[String], topic: &str) -> bool {
    allowed.is_empty() || allowed.iter().any(|t| t.eq_ignore_ascii_case(topic))
}

/// OPTIONS: the CloudEvents webhook abuse-protection handshake.
async fn handshake(State(hook): State<Arc<Webhook>>, uri: Uri, headers: HeaderMap) -> Response {
    let settings = &hook.settings;
    if !settings.auth.check(uri.query(), &headers).await {
        return refused("auth", Problem::unauthorized());
    }
    let Some(origin) = headers
        .get("webhook-request-origin")
        .and_then(|v| v.to_str().ok())
    else {
        return Problem::bad_request(
            "missing-origin",
            "OPTIONS is the CloudEvents webhook handshake: send WebHook-Request-Origin",
        )
        .into_response();
    };
    if !settings
        .allowed_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
    {
        tracing::warn!(
            origin,
            "refused the webhook handshake from an origin that is not allowed"
        );
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden-origin",
            "This origin may not deliver here",
            format!("origin `{origin}` is not in allowed_origins"),
        )
        .into_response();
    }
    let rate = settings
        .allowed_rate
        .map_or_else(|| "*".to_string(), |r| r.to_string());
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    if let Ok(origin) = HeaderValue::from_str(origin) {
        h.insert("webhook-allowed-origin", origin);
    }
    if let Ok(rate) = HeaderValue::from_str(&rate) {
        h.insert("webhook-allowed-rate", rate);
    }
    h.insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
    tracing::info!(origin, "granted the CloudEvents webhook handshake");
    response
}
