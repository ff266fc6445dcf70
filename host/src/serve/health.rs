//! `/readyz`: ready to take events? The journal commits a write, the start-up
//! scan of the plugins folder is done, and the host is not shutting down.
//! (`/healthz`, in ingest, only says the process answers.)

use crate::journal::Journal;
use crate::plugin::Registry;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long the journal probe may take before the journal counts as not writable.
const JOURNAL_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness looks at.
pub struct Readiness {
    /// The journal to probe.
    pub journal: Arc<dyn Journal>,
    /// The plugins.
    pub plugins: Arc<Registry>,
    /// Set when shutdown begins.
    pub shutting_down: Arc<AtomicBool>,
}

/// `GET /readyz`.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .with_state(Arc::new(readiness))
}

async fn readyz(State(r): State<Arc<Readiness>>) -> Response {
    let journal = r.journal.clone();
    let probe = tokio::task::spawn_blocking(move || journal.check_writable());
    let journal = match tokio::time::timeout(JOURNAL_PROBE_TIMEOUT, probe).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(e)) => Err(format!("journal probe failed: {e}")),
        Err(_) => Err(format!(
            "journal: no commit within {}s (locked or stalled)",
            JOURNAL_PROBE_TIMEOUT.as_secs()
        )),
    };
    let status = r.plugins.status();
    let serving = status.iter().filter(|s| s.serving.is_some()).count();
    let rejected = status.iter().filter(|s| s.rejected.is_some()).count();
    let stopping = r.shutting_down.load(Ordering::SeqCst);
    let ready = journal.is_ok() && !stopping;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "journal": journal.as_ref().map_or_else(|e| e.clone(), |_| "writable".into()),
            "plugins": { "serving": serving, "rejected": rejected },
            "shutdown": if stopping { "in progress" } else { "no" },
        }
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
