//! Deliveries by state: waiting for a first attempt (`pending`), waiting for
//! a retry (`retrying`), being attempted now (`in-flight`).

use super::{Admin, rfc3339};
use crate::ingest::Problem;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Which deliveries to list.
#[derive(Debug, Default, Deserialize)]
pub struct DeliveryQuery {
    /// Only this plugin's.
    pub plugin: Option<String>,
    /// Only this state: `pending`, `retrying` or `in-flight`.
    pub state: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// A delivery as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryView {
    id: i64,
    event_id: String,
    event_type: String,
    plugin: String,
    state: &'static str,
    delivery_attempts: u32,
    due_time: String,
    last_error: String,
    publish_time: String,
}

/// Per plugin: `pending` (never attempted) and `retrying` (attempted
/// before) count every delivery not done; `inFlight` is the part of them
/// being attempted now.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct CountView {
    pending: u64,
    retrying: u64,
    in_flight: u64,
}

pub(super) async fn list(
    State(admin): State<Arc<Admin>>,
    Query(q): Query<DeliveryQuery>,
) -> Response {
    if let Some(state) = q.state.as_deref()
        && !["pending", "retrying", "in-flight"].contains(&state)
    {
        return Problem::bad_request(
            "bad-state",
            format!("state `{state}`: expected pending, retrying or in-flight"),
        )
        .into_response();
    }
    let limit = q.limit.unwrap_or(100).min(1000);
    let in_flight = admin.dispatcher.in_flight();
    let busy: HashSet<i64> = in_flight.iter().map(|(id, _)| *id).collect();
    let journal = admin.dispatcher.journal().clone();
    let plugin = q.plugin.clone();
    // Read past `limit` so that filtering by state still fills the page.
    let read = tokio::task::spawn_blocking(move || {
        let rows = journal.deliveries(plugin.as_deref(), limit.saturating_mul(4).max(1000))?;
        Ok::<_, crate::journal::JournalError>((rows, journal.delivery_counts()?))
    })
    .await;
    let (rows, counts) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => return failed(e.to_string()),
        Err(e) => return failed(e.to_string()),
    };
    let mut by_plugin: BTreeMap<String, CountView> = BTreeMap::new();
    for (plugin, never, retrying) in counts {
        let c = by_plugin.entry(plugin).or_default();
        c.pending = never;
        c.retrying = retrying;
    }
    for (_, plugin) in &in_flight {
        by_plugin.entry(plugin.clone()).or_default().in_flight += 1;
    }
    let views: Vec<DeliveryView> = rows
        .into_iter()
        .map(|d| DeliveryView {
            state: if busy.contains(&d.id) {
                "in-flight"
            } else if d.attempts > 0 {
                "retrying"
            } else {
                "pending"
            },
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            plugin: d.plugin,
            delivery_attempts: d.attempts,
            due_time: rfc3339(d.due_at_ms),
            last_error: d.last_error,
            publish_time: rfc3339(d.received_at_ms),
        })
        .filter(|v| q.state.as_deref().is_none_or(|s| s == v.state))
        .take(limit)
        .collect();
    let counts: BTreeMap<String, CountView> = by_plugin
        .into_iter()
        .filter(|(p, _)| q.plugin.as_deref().is_none_or(|want| want == p))
        .collect();
    Json(json!({ "counts": counts, "deliveries": views })).into_response()
}

fn failed(why: String) -> Response {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "journal",
        "The journal cannot answer now",
        why,
    )
    .into_response()
}
