//! `/readyz`: ready to take events? The journal commits a write, the start-up
//! scan of the plugins folder is done, and the host is not shutting down.
//! (`/healthz`, in ingest, only says the process answers.)
//!
//! The journal is probed by a background task every [`PROBE_EVERY`] with a
//! real commit; `/readyz` answers from the last probe, so a flood of
//! readiness checks costs no fsync each, and its body says only which check
//! failed — the reason goes to the host's log, not to whoever asked.

use crate::ingest::Auth;
use crate::journal::Journal;
use crate::plugin::Registry;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the journal is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long one probe may take before the journal counts as not writable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A probe result older than this (the prober is stuck) is not trusted.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// What readiness looks at.
pub struct Readiness {
    plugins: Arc<Registry>,
    shutting_down: Arc<AtomicBool>,
    auth: &'static str,
    /// The last probe: when, and whether the journal committed.
    last: Mutex<(Instant, bool)>,
}

/// How requests are authenticated, in a word, for `/readyz`.
pub fn auth_mode(auth: &Auth, insecure: bool) -> &'static str {
    match (&auth.secret, &auth.entra) {
        (Some(_), Some(_)) => "secret and entra",
        (Some(_), None) => "secret",
        (None, Some(_)) => "entra",
        (None, None) if insecure => "OFF (--insecure-no-auth)",
        (None, None) => "OFF (loopback only)",
    }
}

impl Readiness {
    /// Start probing `journal` in the background.
    pub fn start(
        journal: Arc<dyn Journal>,
        plugins: Arc<Registry>,
        shutting_down: Arc<AtomicBool>,
        auth: &'static str,
    ) -> Arc<Self> {
        let readiness = Arc::new(Self {
            plugins,
            shutting_down,
            auth,
            // Not known yet: not ready until the first probe commits.
            last: Mutex::new((Instant::now(), false)),
        });
        let weak = Arc::downgrade(&readiness);
        tokio::spawn(async move {
            let mut was_ok = true;
            loop {
                let probe = {
                    let journal = journal.clone();
                    tokio::task::spawn_blocking(move || journal.check_writable())
                };
                let result = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                    Ok(Ok(Ok(()))) => Ok(()),
                    Ok(Ok(Err(e))) => Err(e.to_string()),
                    Ok(Err(e)) => Err(format!("journal probe failed: {e}")),
                    Err(_) => Err(format!(
                        "no commit within {}s (locked or stalled)",
                        PROBE_TIMEOUT.as_secs()
                    )),
                };
                let Some(readiness) = weak.upgrade() else {
                    return;
                };
                // Log changes, not every probe.
                match &result {
                    Err(why) if was_ok => tracing::error!("not ready: journal: {why}"),
                    Ok(()) if !was_ok => tracing::info!("ready again: the journal commits"),
                    _ => {}
                }
                was_ok = result.is_ok();
                *readiness.last.lock().unwrap_or_else(|e| e.into_inner()) =
                    (Instant::now(), was_ok);
                drop(readiness);
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
        readiness
    }

    fn journal_ok(&self) -> bool {
        let (at, ok) = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        ok && at.elapsed() < STALE_AFTER
    }
}

/// `GET /readyz`.
pub fn router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn readyz(State(r): State<Arc<Readiness>>) -> Response {
    let journal = r.journal_ok();
    let status = r.plugins.status();
    let serving = status.iter().filter(|s| s.serving.is_some()).count();
    let rejected = status.iter().filter(|s| s.rejected.is_some()).count();
    let stopping = r.shutting_down.load(Ordering::SeqCst);
    let ready = journal && !stopping;
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "journal": if journal { "writable" } else { "not writable" },
            "plugins": { "serving": serving, "rejected": rejected },
            "shutdown": if stopping { "in progress" } else { "no" },
            "auth": r.auth,
        }
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
