//! The admin API under `/admin`, behind a bearer token of its own: an
//! overview and the live tail of accepted events, plugins (status, recent
//! invocations), deliveries by state, dead letters (list,
//! show, replay, purge), plugins pushed to a cluster, and its OpenAPI
//! document. Without a configured token
//! the API is not mounted at all. `/metrics` lives here too, mounted by
//! `serve` on its own.

pub mod console;
pub mod dead_letters;
pub mod deliveries;
pub mod metrics;
mod overview;
pub mod plugins;
mod pushed;

use crate::dispatch::Dispatcher;
use crate::ingest::Problem;
use crate::journal::PluginStore;
pub use crate::journal::rfc3339;
use crate::lograte::LogRate;
use crate::plugin::Registry;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The journal's health as readiness last probed it: whether it commits,
/// and whether the disk has room (asking costs no write).
pub type JournalHealth = Arc<dyn Fn() -> (bool, bool) + Send + Sync>;

/// What every admin handler reaches.
struct Admin {
    token_digest: [u8; 32],
    dispatcher: Arc<Dispatcher>,
    plugins: Arc<Registry>,
    sources: Vec<Arc<crate::pull::Source>>,
    /// The cluster's plugin bucket (cluster mode only).
    pushed: Option<PluginStore>,
    journal_health: JournalHealth,
}

/// The admin routes, for `token`.
pub fn router(
    token: &str,
    dispatcher: Arc<Dispatcher>,
    plugins: Arc<Registry>,
    sources: Vec<Arc<crate::pull::Source>>,
    pushed: Option<PluginStore>,
    journal_health: JournalHealth,
) -> Router {
    let state = Arc::new(Admin {
        token_digest: Sha256::digest(token.as_bytes()).into(),
        dispatcher,
        plugins,
        sources,
        pushed,
        journal_health,
    });
    Router::new()
        .route("/admin/overview", get(overview::overview))
        .route("/admin/events/live", get(overview::live))
        .route("/admin/plugins", get(plugins::list))
        .route("/admin/plugins/{name}", get(plugins::show))
        .route(
            "/admin/plugins/{name}/invocations",
            get(plugins::invocations),
        )
        .route("/admin/deliveries", get(deliveries::list))
        .route("/admin/sources", get(list_sources))
        .route("/admin/dead-letters", get(dead_letters::list))
        .route("/admin/dead-letters/{id}", get(dead_letters::show))
        .route("/admin/dead-letters/replay", post(dead_letters::replay))
        .route("/admin/dead-letters/purge", post(dead_letters::purge))
        .route("/admin/cluster/plugins", get(pushed::list))
        .route(
            "/admin/cluster/plugins/{name}",
            put(pushed::push)
                .delete(pushed::remove)
                .layer(DefaultBodyLimit::max(pushed::MAX_PUSH_BYTES)),
        )
        // The token is checked before anything of the request is parsed
        // (path, query, body): an unauthenticated caller learns nothing.
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .route("/admin/openapi.json", get(openapi))
        .merge(console::routes())
        .with_state(state)
}

/// `GET /admin/sources`: each pull source's counters and state.
async fn list_sources(State(admin): State<Arc<Admin>>) -> axum::Json<serde_json::Value> {
    let list: Vec<serde_json::Value> = admin
        .sources
        .iter()
        .map(|s| s.status.json(s.name()))
        .collect();
    axum::Json(serde_json::json!({ "sources": list }))
}

/// Refused admin requests' log lines, rate-limited.
fn refusals() -> &'static LogRate {
    static RATE: std::sync::OnceLock<LogRate> = std::sync::OnceLock::new();
    RATE.get_or_init(|| LogRate::new(5, 50))
}

/// 401 unless the request carries the admin token.
async fn require_token(
    State(admin): State<Arc<Admin>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    if admin.authorized(request.headers()) {
        return next.run(request).await;
    }
    ::metrics::counter!("gridlet_requests_rejected_total", "reason" => "admin-auth").increment(1);
    if refusals().allow() {
        tracing::warn!(
            suppressed_before = refusals().suppressed(),
            "admin request refused: missing or wrong token"
        );
    }
    Problem::unauthorized().into_response()
}

impl Admin {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        self.token_digest.ct_eq(&given).into()
    }
}

/// The admin API's OpenAPI document (committed as `docs/openapi.json`).
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// `GET /admin/openapi.json`: public, so tools can read it without a token.
async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}
