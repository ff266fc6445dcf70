//! Dead letters: list, show, replay, purge.

use super::{Admin, rfc3339};
use crate::ingest::Problem;
use crate::journal::{DeadLetter, JournalError};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// Which dead letters: by plugin and dead-lettered time (ms since the epoch).
#[derive(Debug, Default, Deserialize)]
pub struct Selection {
    /// Only this plugin's.
    pub plugin: Option<String>,
    /// Dead-lettered at or after.
    pub since: Option<i64>,
    /// Dead-lettered before.
    pub until: Option<i64>,
    /// These ids (replay and purge).
    #[serde(default)]
    pub ids: Vec<i64>,
    /// Every dead letter the other fields select (replay and purge).
    #[serde(default)]
    pub all: bool,
    /// Replay dead letters that were replayed before, too (replay only).
    #[serde(default)]
    pub force: bool,
}

/// A dead letter as the API shows it, with Event Grid's field names.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    id: i64,
    event_id: String,
    topic: String,
    event_type: String,
    plugin: String,
    dead_letter_reason: String,
    delivery_attempts: u32,
    last_error: String,
    errors: Vec<String>,
    publish_time: String,
    dead_lettered_time: String,
    replayed_time: Option<String>,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            topic: d.topic,
            event_type: d.event_type,
            plugin: d.plugin,
            dead_letter_reason: d.reason,
            delivery_attempts: d.delivery_attempts,
            last_error: d.last_error,
            errors: d.errors,
            publish_time: rfc3339(d.publish_time_ms),
            dead_lettered_time: rfc3339(d.dead_lettered_ms),
            replayed_time: d.replayed_ms.map(rfc3339),
        }
    }
}

async fn selected(admin: &Admin, s: &Selection) -> Result<Vec<DeadLetter>, JournalError> {
    let journal = admin.dispatcher.journal().clone();
    let plugin = s.plugin.clone();
    let all = tokio::task::spawn_blocking(move || journal.dead_letters(plugin.as_deref()))
        .await
        .map_err(|e| JournalError(e.to_string()))??;
    Ok(all
        .into_iter()
        .filter(|d| s.since.is_none_or(|t| d.dead_lettered_ms >= t))
        .filter(|d| s.until.is_none_or(|t| d.dead_lettered_ms < t))
        .filter(|d| s.all || s.ids.is_empty() || s.ids.contains(&d.id))
        .collect())
}

fn failed(e: JournalError) -> Response {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "journal",
        "The journal cannot answer now",
        e.to_string(),
    )
    .into_response()
}

pub(super) async fn list(State(admin): State<Arc<Admin>>, Query(s): Query<Selection>) -> Response {
    match selected(&admin, &Selection { all: true, ..s }).await {
        Ok(letters) => {
            let views: Vec<DeadLetterView> = letters.into_iter().map(Into::into).collect();
            Json(json!({ "deadLetters": views })).into_response()
        }
        Err(e) => failed(e),
    }
}

pub(super) async fn show(State(admin): State<Arc<Admin>>, Path(id): Path<i64>) -> Response {
    let journal = admin.dispatcher.journal().clone();
    match tokio::task::spawn_blocking(move || journal.dead_letter_event(id)).await {
        Ok(Ok(Some((letter, event)))) => {
            let attempts = super::plugins::attempts_at(&admin, &letter.plugin, &letter.event_id);
            let mut view =
                serde_json::to_value(DeadLetterView::from(letter)).unwrap_or(Value::Null);
            view["event"] = event;
            // Each attempt's outcome, error and lines, as far as this host
            // remembers them (its recent invocations per plugin).
            view["attempts"] = serde_json::to_value(attempts).unwrap_or(Value::Null);
            Json(view).into_response()
        }
        Ok(Ok(None)) => Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "No such dead letter",
            format!("no dead letter {id}"),
        )
        .into_response(),
        Ok(Err(e)) => failed(e),
        Err(e) => failed(JournalError(e.to_string())),
    }
}

/// Replay or purge need an explicit choice: ids, or `all` (narrowed by
/// plugin and time). The refusal when there is none.
fn unchosen(s: &Selection) -> Option<Response> {
    (s.ids.is_empty() && !s.all).then(|| {
        Problem::bad_request("empty-selection", "give `ids` or `all: true`").into_response()
    })
}

/// The ids a replay or purge acts on, or the refusal (no choice made,
/// journal unavailable).
async fn chosen_ids(admin: &Admin, s: &Selection) -> Result<Vec<i64>, Box<Response>> {
    if let Some(refusal) = unchosen(s) {
        return Err(Box::new(refusal));
    }
    match selected(admin, s).await {
        Ok(letters) => Ok(letters.into_iter().map(|d| d.id).collect()),
        Err(e) => Err(Box::new(failed(e))),
    }
}

pub(super) async fn replay(State(admin): State<Arc<Admin>>, Json(s): Json<Selection>) -> Response {
    let ids = match chosen_ids(&admin, &s).await {
        Ok(ids) => ids,
        Err(refusal) => return *refusal,
    };
    match admin.dispatcher.replay(ids, s.force).await {
        Ok(r) => {
            Json(json!({ "replayed": r.replayed, "alreadyReplayed": r.skipped })).into_response()
        }
        Err(e) => failed(e),
    }
}

pub(super) async fn purge(State(admin): State<Arc<Admin>>, Json(s): Json<Selection>) -> Response {
    let ids = match chosen_ids(&admin, &s).await {
        Ok(ids) => ids,
        Err(refusal) => return *refusal,
    };
    let journal = admin.dispatcher.journal().clone();
    match tokio::task::spawn_blocking(move || journal.purge(&ids)).await {
        Ok(Ok(n)) => Json(json!({ "purged": n })).into_response(),
        Ok(Err(e)) => failed(e),
        Err(e) => failed(JournalError(e.to_string())),
    }
}
