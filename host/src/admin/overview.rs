//! The host at a glance (`GET /admin/overview`: counters since start and
//! over the last hour, deliveries pending, plugins, journal health) and the
//! tail of accepted events (`GET /admin/events/live`, server-sent events).
//! The console polls the first and streams the second.

use super::Admin;
use crate::dispatch::LiveEvent;
use crate::journal::{now_ms, rfc3339};
use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::broadcast::error::RecvError;

/// `GET /admin/overview`.
pub(super) async fn overview(State(admin): State<Arc<Admin>>) -> Json<Value> {
    let stats = admin.dispatcher.stats();
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::SeqCst);
    let journal = admin.dispatcher.journal().clone();
    let pending = tokio::task::spawn_blocking(move || journal.pending().ok())
        .await
        .unwrap_or(None);
    // From readiness's last probe: no write per look.
    let (writable, room) = (admin.journal_health)();
    let status = admin.plugins.status();
    let count =
        |f: &dyn Fn(&crate::plugin::PluginStatus) -> bool| status.iter().filter(|s| f(s)).count();
    let (step, samples) = admin.dispatcher.history();
    let samples: Vec<Value> = samples
        .iter()
        .map(|s| {
            json!({
                "time": rfc3339(s.at_ms),
                "done": s.done,
                "retried": s.retried,
                "deadLettered": s.dead_lettered,
            })
        })
        .collect();
    Json(json!({
        "time": rfc3339(now_ms()),
        "events": {
            "received": get(&stats.events),
            "duplicates": get(&stats.duplicates),
            "refusedBatches": get(&stats.refused),
        },
        "deliveries": {
            "created": get(&stats.deliveries),
            "done": get(&stats.done),
            "retried": get(&stats.retry),
            "deadLettered": get(&stats.dead),
            "postponed": get(&stats.postponed),
            "pending": pending,
            "inFlight": admin.dispatcher.in_flight().len(),
        },
        "plugins": {
            "serving": count(&|s| s.serving.is_some()),
            "rejected": count(&|s| s.rejected.is_some()),
            "waiting": count(&|s| s.waiting),
        },
        "journal": {
            "state": if writable { "writable" } else { "not writable" },
            "disk": if room { "ok" } else { "full" },
        },
        "history": {
            "stepSeconds": step.as_secs_f64(),
            "samples": samples,
        },
    }))
}

/// `GET /admin/events/live`: each accepted event as an `event` message
/// (JSON), `lagged` with how many this watcher missed when it fell more
/// than [`crate::dispatch::LIVE_BACKLOG`] behind.
pub(super) async fn live(
    State(admin): State<Arc<Admin>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let watch = admin.dispatcher.watch();
    let stream = futures_util::stream::unfold(watch, |watch| async move {
        let mut watch = watch?;
        let message = match watch.recv().await {
            Ok(event) => tail_event(&event),
            Err(RecvError::Lagged(missed)) => {
                SseEvent::default().event("lagged").data(missed.to_string())
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(message), Some(watch)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn tail_event(event: &LiveEvent) -> SseEvent {
    SseEvent::default()
        .event("event")
        .data(serde_json::to_string(event).unwrap_or_default())
}
