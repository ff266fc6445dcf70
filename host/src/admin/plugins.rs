//! Plugins: what serves, what was rejected and why, and how deliveries went.
//! Config values are never shown (they may be secrets), only their keys.

use super::{Admin, rfc3339};
use crate::dispatch::PluginCounters;
use crate::ingest::Problem;
use crate::plugin::{InvocationRecord, PluginStatus};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::time::SystemTime;

/// A plugin as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    name: String,
    /// `serving`, `rejected` (newest files rejected; `hash` still serves if
    /// set), `unloaded` or `waiting` (named by the operator, nothing loaded
    /// yet).
    state: &'static str,
    /// No version serves and its deliveries are kept (not dead-lettered)
    /// until one does: a rejected or waiting plugin the operator declared.
    waiting: bool,
    /// The serving version's SHA-256, if one serves.
    hash: Option<String>,
    source: Option<String>,
    manifest: Option<String>,
    loaded_at: Option<String>,
    /// Where the serving code came from: `compiled`, `cache` or `reused`.
    code: Option<&'static str>,
    load_ms: Option<f64>,
    filter: Option<String>,
    limits: Option<LimitsView>,
    grants: Option<GrantsView>,
    retry: Option<RetryView>,
    rejected: Option<RejectedView>,
    unloaded_at: Option<String>,
    counters: CountersView,
    last_error: Option<ErrorView>,
    /// What the serving version asked for and was not granted.
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LimitsView {
    memory_bytes: usize,
    deadline_ms: u128,
    fuel: Option<u64>,
    max_concurrency: u32,
    /// Its key-value quota: most keys and most bytes (keys and values).
    kv_keys: u64,
    kv_bytes: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GrantsView {
    allowed_hosts: Vec<String>,
    allow_private_networks: Vec<String>,
    /// Keys only: values may be secrets.
    config_keys: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RetryView {
    max_delivery_attempts: u32,
    event_time_to_live_in_minutes: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RejectedView {
    hash: Option<String>,
    reason: String,
    at: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CountersView {
    delivered: u64,
    retried: u64,
    dead_lettered: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorView {
    message: String,
    at: String,
}

fn time(t: SystemTime) -> String {
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    rfc3339(ms)
}

impl PluginView {
    fn new(s: PluginStatus, counters: PluginCounters) -> Self {
        let serving = s.serving.as_ref();
        let plugin = serving.map(|v| v.target.plugin());
        Self {
            name: s.name,
            state: s.state.as_str(),
            waiting: s.waiting,
            hash: serving.map(|v| v.hash.clone()),
            source: plugin.map(|p| p.source.display().to_string()),
            manifest: plugin.and_then(|p| p.manifest.as_ref().map(|m| m.display().to_string())),
            loaded_at: serving.map(|v| time(v.loaded_at)),
            code: serving.map(|v| v.compiled.as_str()),
            load_ms: serving.map(|v| v.load_time.as_secs_f64() * 1000.0),
            filter: plugin.map(|p| p.filter.summary()),
            limits: plugin.map(|p| {
                let l = p.version.limits();
                LimitsView {
                    memory_bytes: l.memory_bytes,
                    deadline_ms: l.deadline.as_millis(),
                    fuel: l.fuel,
                    max_concurrency: l.max_concurrency,
                    kv_keys: l.kv_keys,
                    kv_bytes: l.kv_bytes,
                }
            }),
            grants: plugin.map(|p| {
                let g = p.version.grants();
                GrantsView {
                    allowed_hosts: g.outbound.allowed_hosts.entries(),
                    allow_private_networks: g.outbound.networks.entries(),
                    config_keys: g.config.keys().map(str::to_string).collect(),
                }
            }),
            retry: plugin.map(|p| RetryView {
                max_delivery_attempts: p.retry.max_delivery_attempts,
                event_time_to_live_in_minutes: p.retry.event_time_to_live.as_secs() / 60,
            }),
            rejected: s.rejected.map(|r| RejectedView {
                hash: r.hash,
                reason: r.reason,
                at: time(r.at),
            }),
            unloaded_at: s.unloaded_at.map(time),
            counters: CountersView {
                delivered: counters.delivered,
                retried: counters.retried,
                dead_lettered: counters.dead_lettered,
            },
            last_error: counters.last_error.map(|(message, at)| ErrorView {
                message,
                at: rfc3339(at),
            }),
            warnings: plugin.map(|p| p.warnings.clone()).unwrap_or_default(),
        }
    }
}

fn views(admin: &Admin) -> Vec<PluginView> {
    admin
        .plugins
        .status()
        .into_iter()
        .map(|s| {
            let counters = admin.dispatcher.plugin_counters(&s.name);
            PluginView::new(s, counters)
        })
        .collect()
}

pub(super) async fn list(State(admin): State<Arc<Admin>>) -> Response {
    Json(json!({ "plugins": views(&admin) })).into_response()
}

pub(super) async fn show(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Response {
    match views(&admin).into_iter().find(|v| v.name == name) {
        Some(view) => Json(view).into_response(),
        None => not_found(&name),
    }
}

/// One recent invocation as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InvocationView {
    time: String,
    event_id: String,
    event_type: String,
    attempt: u32,
    version: String,
    outcome: &'static str,
    reason: Option<String>,
    duration_ms: f64,
    lines: Vec<String>,
}

pub(super) async fn invocations(
    State(admin): State<Arc<Admin>>,
    Path(name): Path<String>,
) -> Response {
    let Some(status) = admin.plugins.status().into_iter().find(|s| s.name == name) else {
        return not_found(&name);
    };
    let list: Vec<InvocationView> = status
        .history
        .recent()
        .into_iter()
        .map(InvocationView::from)
        .collect();
    Json(json!({ "plugin": name, "invocations": list })).into_response()
}

impl From<InvocationRecord> for InvocationView {
    fn from(r: InvocationRecord) -> Self {
        Self {
            time: rfc3339(r.at_ms),
            event_id: r.event_id,
            event_type: r.event_type,
            attempt: r.attempt,
            version: r.version,
            outcome: r.outcome,
            reason: r.reason,
            duration_ms: r.duration_ms,
            lines: r.lines,
        }
    }
}

/// `plugin`'s attempts at `event_id` that this host remembers, oldest
/// first.
pub(super) fn attempts_at(admin: &Admin, plugin: &str, event_id: &str) -> Vec<InvocationView> {
    let Some(status) = admin
        .plugins
        .status()
        .into_iter()
        .find(|s| s.name == plugin)
    else {
        return Vec::new();
    };
    let mut list: Vec<InvocationView> = status
        .history
        .recent()
        .into_iter()
        .filter(|r| r.event_id == event_id)
        .map(InvocationView::from)
        .collect();
    list.reverse();
    list
}

fn not_found(name: &str) -> Response {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "No such plugin",
        format!("no plugin `{name}` has been seen in the plugins folder"),
    )
    .into_response()
}
