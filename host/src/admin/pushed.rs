//! `/admin/cluster/plugins`: plugins pushed to every host of a cluster
//! (`gridlet plugins push` / `remove`). Each host mirrors the bucket and
//! reconciles as it would a file in its plugins folder; these calls only
//! store or remove, and answer once the cluster has the change.

use super::Admin;
use crate::ingest::Problem;
use crate::journal::{JournalError, PluginStore};
use crate::plugin::plugin_name;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Largest push body: a `.wasm` of the default largest size, in base64,
/// and its manifest.
pub(super) const MAX_PUSH_BYTES: usize =
    (crate::plugin::registry::DEFAULT_MAX_PLUGIN_BYTES as usize) / 3 * 4 + 1024 * 1024;

/// What `PUT /admin/cluster/plugins/{name}` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Push {
    /// The `.wasm`, base64.
    wasm: String,
    /// The manifest's TOML text, if the plugin has one.
    #[serde(default)]
    manifest: Option<String>,
}

fn store(admin: &Admin) -> Result<&PluginStore, Box<Response>> {
    admin.pushed.as_ref().ok_or_else(|| {
        Box::new(
            Problem::new(
                StatusCode::CONFLICT,
                "not-cluster-mode",
                "This host is not in cluster mode",
                "plugins are pushed to a cluster ([cluster] in gridlet.toml); on one host, \
                 put the files in its plugins folder",
            )
            .into_response(),
        )
    })
}

fn failed(e: JournalError) -> Response {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "cluster",
        "The cluster cannot answer now",
        e.to_string(),
    )
    .into_response()
}

fn checked_name(name: &str) -> Result<(), Box<Response>> {
    plugin_name(std::path::Path::new(&format!("{name}.wasm")))
        .map(|_| ())
        .map_err(|_| {
            Box::new(
                Problem::bad_request(
                    "bad-plugin-name",
                    format!("`{name}` is not a plugin name: 1-64 of a-z, 0-9, `-` and `_`"),
                )
                .into_response(),
            )
        })
}

/// `GET /admin/cluster/plugins`: the names pushed.
pub(super) async fn list(State(admin): State<Arc<Admin>>) -> Response {
    let store = match store(&admin) {
        Ok(s) => s,
        Err(refusal) => return *refusal,
    };
    match store.names().await {
        Ok(mut names) => {
            names.sort();
            Json(json!({ "plugins": names })).into_response()
        }
        Err(e) => failed(e),
    }
}

/// `PUT /admin/cluster/plugins/{name}`: store a plugin for every host.
pub(super) async fn push(
    State(admin): State<Arc<Admin>>,
    Path(name): Path<String>,
    Json(push): Json<Push>,
) -> Response {
    let store = match store(&admin).and_then(|s| checked_name(&name).map(|()| s)) {
        Ok(s) => s,
        Err(refusal) => return *refusal,
    };
    let Ok(wasm) = base64::engine::general_purpose::STANDARD.decode(push.wasm.as_bytes()) else {
        return Problem::bad_request("malformed-wasm", "`wasm` is not base64").into_response();
    };
    if !wasm.starts_with(b"\0asm") {
        return Problem::bad_request(
            "malformed-wasm",
            "`wasm` is not a WebAssembly binary (no \\0asm header)",
        )
        .into_response();
    }
    match store.push(&name, &wasm, push.manifest.as_deref()).await {
        Ok(()) => {
            let hash: String = Sha256::digest(&wasm)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            tracing::info!(plugin = %name, hash = %crate::plugin::registry::short(&hash), bytes = wasm.len(), "plugin pushed to the cluster");
            Json(json!({ "pushed": name, "hash": hash, "bytes": wasm.len() })).into_response()
        }
        Err(e) => failed(e),
    }
}

/// `DELETE /admin/cluster/plugins/{name}`: remove a pushed plugin from
/// every host.
pub(super) async fn remove(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Response {
    let store = match store(&admin).and_then(|s| checked_name(&name).map(|()| s)) {
        Ok(s) => s,
        Err(refusal) => return *refusal,
    };
    match store.remove(&name).await {
        Ok(removed) => {
            if removed {
                tracing::info!(plugin = %name, "plugin removed from the cluster");
            }
            Json(json!({ "removed": removed })).into_response()
        }
        Err(e) => failed(e),
    }
}
