//! Plugins on disk: `<name>.wasm` with an optional `<name>.toml` manifest,
//! loaded into the runtime as a [`LoadedPlugin`], kept current by the
//! [`Registry`] (atomic swaps, compile cache, status) and the [`Watcher`].

pub mod cache;
pub mod compiler;
pub mod declared;
pub mod files;
pub mod grants;
pub mod manifest;
pub mod pushed;
pub mod registry;
pub mod status;
pub mod target;
pub mod watcher;

pub use cache::CompileCache;
pub use compiler::{ChildCompiler, Compiler};
pub use grants::{LimitCaps, OperatorGrants, PluginGrant};
pub use manifest::{Manifest, ManifestError, RetryPolicy};
pub use registry::{Change, PluginStatus, Registry};
pub use target::{InvocationRecord, PluginTarget};
pub use watcher::{WatchSettings, Watcher};

use crate::filter::Filter;
use crate::runtime::{LoadError, PluginVersion, Runtime};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A plugin ready to receive events.
pub struct LoadedPlugin {
    /// The version that serves deliveries.
    pub version: Arc<PluginVersion>,
    /// Which events it receives.
    pub filter: Filter,
    /// How its failed deliveries are retried.
    pub retry: RetryPolicy,
    /// The `.wasm` it came from.
    pub source: PathBuf,
    /// The manifest it was loaded with, if any.
    pub manifest: Option<PathBuf>,
    /// What the manifest asked for and the operator did not grant.
    pub warnings: Vec<String>,
    /// Deliveries at once its manifest allows across every host of a
    /// cluster (this host's share is in `version`'s limits).
    pub overall_concurrency: u32,
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file name does not make a plugin name.
    #[error("{}: plugin names are 1-64 characters of a-z, 0-9, `-` and `_`", .0.display())]
    BadName(PathBuf),
    /// The `.wasm` could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The manifest requires what the operator did not grant.
    #[error("{}: {reason}", path.display())]
    NotGranted {
        /// The plugin's `.wasm`.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The component is not usable.
    #[error("{}: {source}", path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: LoadError,
    },
}

/// The plugin name a `.wasm` path gives: its file stem.
pub fn plugin_name(wasm: &Path) -> Result<String, PluginError> {
    let name = wasm
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(PluginError::BadName(wasm.to_path_buf()))
    }
}

/// The sidecar manifest path for a `.wasm`: same folder, same stem, `.toml`.
pub fn sidecar(wasm: &Path) -> PathBuf {
    wasm.with_extension("toml")
}

/// Read the manifest for `wasm`: `explicit` if given, else the sidecar if it
/// exists, else the defaults (every event, default limits, no grants).
pub fn read_manifest(
    wasm: &Path,
    explicit: Option<&Path>,
) -> Result<(Manifest, Option<PathBuf>), PluginError> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => Some(sidecar(wasm)).filter(|p| p.exists()),
    };
    match &path {
        Some(p) => Ok((Manifest::load(p)?, path)),
        None => Ok((Manifest::default(), None)),
    }
}

/// Compile and link `wasm` with `manifest`, within what `grant` allows.
pub fn load(
    runtime: &Runtime,
    wasm: &Path,
    manifest: Manifest,
    grant: &PluginGrant,
    manifest_path: Option<PathBuf>,
) -> Result<LoadedPlugin, PluginError> {
    load_from(runtime, wasm, manifest, grant, manifest_path, None)
}

/// [`load`], taking the compiled code from `cache` when it is there (and
/// storing it when it is not).
pub fn load_cached(
    runtime: &Runtime,
    wasm: &Path,
    manifest: Manifest,
    grant: &PluginGrant,
    manifest_path: Option<PathBuf>,
    cache: &CompileCache,
) -> Result<LoadedPlugin, PluginError> {
    load_from(runtime, wasm, manifest, grant, manifest_path, Some(cache))
}

fn load_from(
    runtime: &Runtime,
    wasm: &Path,
    manifest: Manifest,
    grant: &PluginGrant,
    manifest_path: Option<PathBuf>,
    cache: Option<&CompileCache>,
) -> Result<LoadedPlugin, PluginError> {
    let name = plugin_name(wasm)?;
    let resolved =
        grants::resolve(&name, &manifest, grant).map_err(|reason| PluginError::NotGranted {
            path: wasm.to_path_buf(),
            reason,
        })?;
    let bytes = std::fs::read(wasm).map_err(|source| PluginError::Read {
        path: wasm.to_path_buf(),
        source,
    })?;
    let at = |source| PluginError::Load {
        path: wasm.to_path_buf(),
        source,
    };
    let component = match cache {
        Some(cache) => {
            cache
                .component(runtime, &cache::content_hash(&bytes), &bytes)
                .map_err(at)?
                .0
        }
        None => runtime.compile(&bytes).map_err(at)?,
    };
    let version = runtime
        .prepare(&name, &component, resolved.limits, resolved.grants)
        .map_err(at)?
        .with_version(registry::short(&cache::content_hash(&bytes)));
    Ok(LoadedPlugin {
        version: Arc::new(version),
        overall_concurrency: manifest.declared_concurrency(),
        filter: manifest.filter,
        retry: manifest.retry,
        source: wasm.to_path_buf(),
        manifest: manifest_path,
        warnings: resolved.warnings,
    })
}
