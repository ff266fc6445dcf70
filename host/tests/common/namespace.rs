//! An Event Grid namespace emulator for the pull tests: one topic with
//! queue subscriptions speaking the data plane of api-version 2024-06-01 —
//! publish, receive with locks, acknowledge, release (with delay), reject,
//! renewLock — with lock expiry, delivery counts, a max delivery count and
//! a dead-letter list, `SharedAccessKey` auth, and throttling on demand.
//! The real azure-eventgrid SDK is held against it (`tests/pull.rs`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One event in a subscription's queue.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The CloudEvent.
    pub event: Value,
    /// Receives so far.
    pub delivery_count: u32,
    /// The current lock: its token and when it expires.
    pub lock: Option<(String, Instant)>,
    /// Not receivable before this (a release with delay).
    pub available_at: Instant,
}

/// What the emulator holds and how it behaves.
#[derive(Debug)]
pub struct NamespaceState {
    /// The access key requests must carry...
    pub key: String,
    /// ...or this Entra token, as `Bearer`.
    pub bearer: Option<String>,
    /// The topic's name.
    pub topic: String,
    /// Queues by subscription name.
    pub queues: HashMap<String, VecDeque<Queued>>,
    /// Rejected or over-delivered events, by subscription.
    pub dead_letters: HashMap<String, Vec<Value>>,
    /// How long a lock lasts.
    pub lock_duration: Duration,
    /// After this many deliveries an event is dead-lettered.
    pub max_delivery_count: u32,
    /// Answer the next N calls with 429 and this `Retry-After`.
    pub throttle: Option<(u32, u64)>,
    /// Every call: (operation, when).
    pub calls: Vec<(String, Instant)>,
    /// Each release's delay in seconds.
    pub release_delays: Vec<u32>,
    /// Answer acknowledge calls with every token failed (`TokenLost`).
    pub lose_acknowledgements: bool,
    /// Hold acknowledge calls unanswered while set.
    pub hold_acknowledgements: bool,
    next_token: u64,
}

/// A running emulator.
#[derive(Clone)]
pub struct Emulator {
    /// Its address.
    pub addr: SocketAddr,
    /// Its state, to inspect and steer.
    pub state: Arc<Mutex<NamespaceState>>,
}

impl Emulator {
    /// Start with `subscriptions` on `topic`, accepting `key`.
    pub async fn start(key: &str, topic: &str, subscriptions: &[&str]) -> Self {
        let state = Arc::new(Mutex::new(NamespaceState {
            key: key.to_string(),
            bearer: None,
            topic: topic.to_string(),
            queues: subscriptions
                .iter()
                .map(|s| (s.to_string(), VecDeque::new()))
                .collect(),
            dead_letters: HashMap::new(),
            lock_duration: Duration::from_secs(60),
            max_delivery_count: 10,
            throttle: None,
            calls: Vec::new(),
            release_delays: Vec::new(),
            lose_acknowledgements: false,
            hold_acknowledgements: false,
            next_token: 0,
        }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state }
    }

    /// The namespace endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Publish CloudEvents straight into every subscription's queue.
    pub fn publish(&self, events: &[Value]) {
        enqueue(&mut self.state.lock().expect("state"), events);
    }

    /// Events still queued (locked or not) in `subscription`.
    pub fn queued(&self, subscription: &str) -> usize {
        self.state.lock().expect("state").queues[subscription].len()
    }

    /// Dead letters of `subscription`.
    pub fn dead_letters(&self, subscription: &str) -> Vec<Value> {
        let state = self.state.lock().expect("state");
        state
            .dead_letters
            .get(subscription)
            .cloned()
            .unwrap_or_default()
    }

    /// How many calls of `operation` were made.
    pub fn calls(&self, operation: &str) -> usize {
        let state = self.state.lock().expect("state");
        state.calls.iter().filter(|(o, _)| o == operation).count()
    }
}

fn problem(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Every call: `/topics/{t}:publish` and
/// `/topics/{t}/eventsubscriptions/{s}:{operation}`.
async fn handle(
    State(state): State<Arc<Mutex<NamespaceState>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query: HashMap<String, String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if query.get("api-version").map(String::as_str) != Some("2024-06-01") {
        return problem(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "api-version 2024-06-01 expected",
        );
    }
    {
        let mut s = state.lock().expect("state");
        let given = headers.get("authorization").and_then(|v| v.to_str().ok());
        let key = format!("SharedAccessKey {}", s.key);
        let bearer = s.bearer.as_ref().map(|t| format!("Bearer {t}"));
        if given != Some(key.as_str()) && given != bearer.as_deref() {
            return problem(StatusCode::UNAUTHORIZED, "Unauthorized", "bad key");
        }
        if let Some((n, after)) = s.throttle {
            s.throttle = (n > 1).then_some((n - 1, after));
            s.calls.push(("throttled".into(), Instant::now()));
            let mut r = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "throttled",
            );
            r.headers_mut()
                .insert("retry-after", after.to_string().parse().expect("header"));
            return r;
        }
    }
    let Some(rest) = path.strip_prefix("/topics/") else {
        return problem(StatusCode::NOT_FOUND, "NotFound", "no such path");
    };
    if let Some(topic) = rest.strip_suffix(":publish") {
        return publish(&state, topic, &body);
    }
    let Some((topic, rest)) = rest.split_once("/eventsubscriptions/") else {
        return problem(StatusCode::NOT_FOUND, "NotFound", "no such path");
    };
    let Some((subscription, operation)) = rest.split_once(':') else {
        return problem(StatusCode::NOT_FOUND, "NotFound", "no operation");
    };
    {
        let mut s = state.lock().expect("state");
        if topic != s.topic || !s.queues.contains_key(subscription) {
            return problem(StatusCode::NOT_FOUND, "NotFound", "no such subscription");
        }
        s.calls.push((operation.to_string(), Instant::now()));
    }
    if operation == "receive" {
        let max_events: usize = query
            .get("maxEvents")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let max_wait: u64 = query
            .get("maxWaitTime")
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        if !(1..=100).contains(&max_events) || !(10..=120).contains(&max_wait) {
            return problem(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "maxEvents or maxWaitTime out of range",
            );
        }
        return receive(
            &state,
            subscription,
            max_events,
            Duration::from_secs(max_wait),
        )
        .await;
    }
    let tokens: Vec<String> = match serde_json::from_slice::<Value>(&body) {
        Ok(v) => v["lockTokens"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => return problem(StatusCode::BAD_REQUEST, "BadRequest", "body is not JSON"),
    };
    let delay: u32 = query
        .get("releaseDelayInSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if operation == "release" && ![0, 10, 60, 600, 3600].contains(&delay) {
        return problem(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "releaseDelayInSeconds",
        );
    }
    if operation == "acknowledge" {
        while state.lock().expect("state").hold_acknowledgements {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut s = state.lock().expect("state");
    let lose = operation == "acknowledge" && s.lose_acknowledgements;
    if operation == "release" {
        s.release_delays.push(delay);
    }
    let now = Instant::now();
    let lock_duration = s.lock_duration;
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    let mut dead = Vec::new();
    let queue = s.queues.get_mut(subscription).expect("queue");
    for token in tokens {
        let at = queue.iter().position(|q| {
            q.lock
                .as_ref()
                .is_some_and(|(t, until)| *t == token && *until > now)
        });
        let Some(at) = at.filter(|_| !lose) else {
            failed.push(json!({"lockToken": token, "error": {"code": "TokenLost", "message": "the lock token is unknown or expired"}}));
            continue;
        };
        match operation {
            "acknowledge" => {
                queue.remove(at);
            }
            "reject" => {
                dead.extend(queue.remove(at).map(|q| q.event));
            }
            "release" => {
                queue[at].lock = None;
                queue[at].available_at = now + Duration::from_secs(delay.into());
            }
            "renewLock" => {
                if let Some((_, until)) = queue[at].lock.as_mut() {
                    *until = now + lock_duration;
                }
            }
            _ => return problem(StatusCode::NOT_FOUND, "NotFound", "no such operation"),
        }
        succeeded.push(token);
    }
    s.dead_letters
        .entry(subscription.to_string())
        .or_default()
        .extend(dead);
    axum::Json(json!({"succeededLockTokens": succeeded, "failedLockTokens": failed}))
        .into_response()
}

/// Every subscription gets each event.
fn enqueue(state: &mut NamespaceState, events: &[Value]) {
    let now = Instant::now();
    for queue in state.queues.values_mut() {
        for e in events {
            queue.push_back(Queued {
                event: e.clone(),
                delivery_count: 0,
                lock: None,
                available_at: now,
            });
        }
    }
}

fn publish(state: &Arc<Mutex<NamespaceState>>, topic: &str, body: &[u8]) -> Response {
    let events: Vec<Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(a)) => a,
        Ok(one @ Value::Object(_)) => vec![one],
        _ => return problem(StatusCode::BAD_REQUEST, "BadRequest", "not CloudEvents"),
    };
    let mut s = state.lock().expect("state");
    if s.topic != topic {
        return problem(StatusCode::NOT_FOUND, "NotFound", "no such topic");
    }
    enqueue(&mut s, &events);
    axum::Json(json!({})).into_response()
}

async fn receive(
    state: &Arc<Mutex<NamespaceState>>,
    subscription: &str,
    max_events: usize,
    max_wait: Duration,
) -> Response {
    let started = Instant::now();
    loop {
        let value = {
            let mut s = state.lock().expect("state");
            let now = Instant::now();
            let (lock_duration, max_count) = (s.lock_duration, s.max_delivery_count);
            let mut value = Vec::new();
            let mut dead = Vec::new();
            let queue = s.queues.get_mut(subscription).expect("queue");
            let mut i = 0;
            while i < queue.len() && value.len() < max_events {
                let q = &mut queue[i];
                let free = q.lock.as_ref().is_none_or(|(_, until)| *until <= now);
                if !free || q.available_at > now {
                    i += 1;
                    continue;
                }
                if q.delivery_count >= max_count {
                    dead.extend(queue.remove(i).map(|q| q.event));
                    continue;
                }
                q.delivery_count += 1;
                value.push((i, q.delivery_count));
                i += 1;
            }
            let mut answer = Vec::new();
            for (i, count) in value {
                s.next_token += 1;
                let token = format!("token-{}", s.next_token);
                let q = &mut s.queues.get_mut(subscription).expect("queue")[i];
                q.lock = Some((token.clone(), now + lock_duration));
                answer.push(json!({
                    "brokerProperties": {"lockToken": token, "deliveryCount": count},
                    "event": q.event,
                }));
            }
            s.dead_letters
                .entry(subscription.to_string())
                .or_default()
                .extend(dead);
            answer
        };
        // Long polling, shortened for tests: wait up to a second at most.
        if !value.is_empty() || started.elapsed() >= max_wait.min(Duration::from_secs(1)) {
            return axum::Json(json!({ "value": value })).into_response();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
