//! `/readyz`: ready to take events? The journal commits a write, the state
//! folder's disk has room, the start-up scan of the plugins folder is done
//! (`plugins.loading`: until then events are taken and kept for the
//! plugins found, which are still compiling), and the host is not shutting
//! down. (`/healthz`, in ingest, only says the
//! process answers.)
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
    /// The start-up scan is still loading the plugins.
    loading: Arc<AtomicBool>,
    shutting_down: Arc<AtomicBool>,
    auth: &'static str,
    sources: Vec<Arc<crate::pull::Source>>,
    /// The last probe: when, whether the journal committed, and whether
    /// the disk had room.
    last: Mutex<(Instant, bool, bool)>,
}

/// Where the journal lives and how much free space it needs: with less, a
/// commit may still succeed into free pages while batches fail, so
/// readiness looks at the disk itself.
#[derive(Debug, Clone)]
pub struct Disk {
    /// The state folder.
    pub dir: std::path::PathBuf,
    /// Bytes that must stay free.
    pub min_free: u64,
}

impl Disk {
    /// Free bytes for an unprivileged writer on the folder's file system.
    pub fn free(&self) -> Option<u64> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.dir.as_os_str().as_bytes()).ok()?;
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is a valid C string and `stat` a valid out pointer.
        if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
            return None;
        }
        Some(stat.f_bavail as u64 * stat.f_frsize as u64)
    }

    fn has_room(&self) -> bool {
        self.free().is_none_or(|free| free >= self.min_free)
    }
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
        disk: Disk,
        plugins: Arc<Registry>,
        loading: Arc<AtomicBool>,
        shutting_down: Arc<AtomicBool>,
        auth: &'static str,
        sources: Vec<Arc<crate::pull::Source>>,
    ) -> Arc<Self> {
        let readiness = Arc::new(Self {
            plugins,
            loading,
            shutting_down,
            auth,
            sources,
            // Not known yet: not ready until the first probe commits.
            last: Mutex::new((Instant::now(), false, true)),
        });
        let weak = Arc::downgrade(&readiness);
        tokio::spawn(async move {
            let mut was_ok = true;
            let mut had_room = true;
            loop {
                let room = disk.has_room();
                if room != had_room {
                    match room {
                        false => tracing::error!(
                            free = disk.free().unwrap_or(0),
                            needed = disk.min_free,
                            "not ready: the state folder's disk is (nearly) full"
                        ),
                        true => tracing::info!("the state folder's disk has room again"),
                    }
                    had_room = room;
                }
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
                    (Instant::now(), was_ok, room);
                drop(readiness);
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
        readiness
    }

    /// From the last probe: whether the journal commits, and whether the
    /// disk has room.
    pub fn checks(&self) -> (bool, bool) {
        let (at, ok, room) = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        (ok && at.elapsed() < STALE_AFTER, room)
    }
}

/// `GET /readyz`.
pub fn router(readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn readyz(State(r): State<Arc<Readiness>>) -> Response {
    let (journal, room) = r.checks();
    let status = r.plugins.status();
    let serving = status.iter().filter(|s| s.serving.is_some()).count();
    let rejected = status.iter().filter(|s| s.rejected.is_some()).count();
    let waiting = status.iter().filter(|s| s.waiting).count();
    let stopping = r.shutting_down.load(Ordering::SeqCst);
    let loading = r.loading.load(Ordering::SeqCst);
    let ready = journal && room && !stopping && !loading;
    let mut body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "journal": if journal { "writable" } else { "not writable" },
            "disk": if room { "ok" } else { "full" },
            "plugins": { "serving": serving, "rejected": rejected, "waiting": waiting, "loading": loading },
            "shutdown": if stopping { "in progress" } else { "no" },
            "auth": r.auth,
        }
    });
    // Each pull source's state; a failing one does not make the host
    // unready (the webhook and other sources still take events): it is
    // reported here, in the admin API and in the metrics.
    if !r.sources.is_empty() {
        body["checks"]["pull"] = r
            .sources
            .iter()
            .map(|s| {
                let state = if s.status.healthy() {
                    "receiving"
                } else {
                    "failing"
                };
                (s.name().to_string(), json!(state))
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}
