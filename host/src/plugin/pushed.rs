//! Plugins pushed to the whole cluster (`gridlet plugins push`): every host
//! mirrors the cluster's plugin bucket into a folder of its own
//! (`<state_dir>/pushed-plugins`) and reconciles each changed plugin from
//! there — the same path as a file dropped in the plugins folder: atomic
//! swap, never worse (a broken push leaves the serving version serving),
//! compile cache. A plugin of the same name in the plugins folder wins.

use super::cache::write_atomically;
use super::registry::Registry;
use super::{plugin_name, sidecar};
use crate::journal::{JournalError, PluginChange, PluginStore};
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Mirror `store` into `dir` and reconcile `registry` with it, for as long
/// as the host runs; after a lost connection, the whole bucket again.
pub fn start(store: PluginStore, registry: Arc<Registry>, dir: PathBuf) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = follow(&store, &registry, &dir).await {
                tracing::warn!("cluster plugins: {e}; following the bucket again in 1 s");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// The whole bucket once, then each change as it comes.
async fn follow(
    store: &PluginStore,
    registry: &Arc<Registry>,
    dir: &Path,
) -> Result<(), JournalError> {
    std::fs::create_dir_all(dir).map_err(|e| JournalError(format!("{}: {e}", dir.display())))?;
    // Watch first, then list, so no push between the two is missed.
    let mut changes = store.changes().await?;
    let names = store.names().await?;
    for gone in mirrored(dir).into_iter().filter(|n| !names.contains(n)) {
        apply(store, registry, dir, &gone).await?;
    }
    for name in &names {
        apply(store, registry, dir, name).await?;
    }
    while let Some(change) = changes.next().await {
        match change? {
            PluginChange::Pushed(name) | PluginChange::Removed(name) => {
                apply(store, registry, dir, &name).await?;
            }
        }
    }
    Err(JournalError("the bucket's watch ended".into()))
}

/// The plugins mirrored in `dir` now.
fn mirrored(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .filter_map(|p| plugin_name(&p).ok())
        .collect()
}

/// Make `dir`'s copy of `name` what the bucket holds (or nothing), then
/// reconcile the plugin.
async fn apply(
    store: &PluginStore,
    registry: &Arc<Registry>,
    dir: &Path,
    name: &str,
) -> Result<(), JournalError> {
    let wasm = dir.join(format!("{name}.wasm"));
    if plugin_name(&wasm).is_err() {
        tracing::error!(plugin = name, "cluster plugins: not a plugin name; ignored");
        return Ok(());
    }
    let manifest = sidecar(&wasm);
    let written = match store.get(name).await? {
        Some(pushed) => {
            write_atomically(dir, &wasm, &pushed.wasm).and_then(|()| match &pushed.manifest {
                Some(text) => write_atomically(dir, &manifest, text.as_bytes()),
                None => remove(&manifest),
            })
        }
        None => remove(&wasm).and_then(|()| remove(&manifest)),
    };
    written.map_err(|e| JournalError(format!("cluster plugins: {name}: {e}")))?;
    let (registry, name) = (registry.clone(), name.to_string());
    let change = tokio::task::spawn_blocking(move || registry.reconcile(&name))
        .await
        .map_err(|e| JournalError(format!("cluster plugins: reconcile: {e}")))?;
    tracing::debug!(?change, "cluster plugins: reconciled");
    Ok(())
}

fn remove(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}
