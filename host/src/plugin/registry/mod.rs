//! The registry: which version of each plugin serves, swapped atomically.
//!
//! One code path, [`Registry::reconcile`], makes a plugin match its files on
//! disk; start-up runs it for every file ([`Registry::scan`]) and the watcher
//! for every change. A new version is compiled (or loaded from the compile
//! cache) and type-checked off the hot path, then published in one
//! `arc-swap` store. Deliveries hold an `Arc` of the version they started on,
//! so they finish on it; the old version is freed when the last one ends.
//! A file that cannot become a version never replaces a working one: the
//! plugin keeps serving and its status shows the rejected file and why.

use super::Compiler;
use super::cache::CompileCache;
use super::declared::{Declared, DeclaredTarget};
use super::grants::OperatorGrants;
use super::target::History;
use crate::dispatch::{Target, Targets};
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

mod reconcile;

pub use super::status::{Change, PluginStatus, Rejection, Serving, State};

#[derive(Default)]
struct Slot {
    history: Arc<History>,
    serving: Option<Serving>,
    rejected: Option<Rejection>,
    unloaded_at: Option<SystemTime>,
    /// What is known of it while no version serves (see [`Declared`]).
    declared: Option<Declared>,
    /// `declared` comes from [`Registry::declare_found`] and gives way at
    /// the plugin's first reconcile.
    provisional: bool,
}

/// Where plugins come from and what bounds them.
#[derive(Debug, Clone)]
pub struct Folder {
    /// The plugins folder.
    pub dir: PathBuf,
    /// Where compiled code is cached.
    pub cache_dir: PathBuf,
    /// Largest `.wasm` read.
    pub max_plugin_bytes: u64,
    /// What the operator grants each plugin.
    pub grants: Arc<OperatorGrants>,
    /// Where new versions are compiled.
    pub compiler: Compiler,
}

/// Largest `.wasm` read by default: far above any example (the Python one is
/// the largest, at tens of MiB), far below what would hurt the host.
pub const DEFAULT_MAX_PLUGIN_BYTES: u64 = 128 * 1024 * 1024;

/// Every plugin of one folder.
pub struct Registry {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    /// Plugins pushed to the cluster, mirrored here (`plugin::pushed`); a
    /// plugin in `dir` wins over one of the same name here.
    pushed: Option<PathBuf>,
    max_plugin_bytes: u64,
    grants: Arc<OperatorGrants>,
    compiler: Compiler,
    cache: CompileCache,
    /// What dispatch and ingest read on every event: one atomic load.
    serving: ArcSwap<Vec<Arc<dyn Target>>>,
    /// Told of every publish (see [`Targets::changed`]).
    changed: Arc<tokio::sync::Notify>,
    slots: Mutex<BTreeMap<String, Slot>>,
    /// One reconcile at a time, so two changes never race to publish.
    reconciling: Mutex<()>,
}

impl Registry {
    /// An empty registry for the plugins in `folder`.
    pub fn new(runtime: Arc<Runtime>, folder: Folder) -> Self {
        let cache = CompileCache::new(folder.cache_dir, &runtime);
        Self {
            runtime,
            dir: folder.dir,
            pushed: None,
            max_plugin_bytes: folder.max_plugin_bytes,
            grants: folder.grants,
            compiler: folder.compiler,
            cache,
            serving: ArcSwap::from_pointee(Vec::new()),
            changed: Arc::new(tokio::sync::Notify::new()),
            slots: Mutex::new(BTreeMap::new()),
            reconciling: Mutex::new(()),
        }
    }

    /// The runtime versions are loaded into.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The plugins folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Also serve the plugins mirrored into `dir` from the cluster's
    /// bucket, under those of the plugins folder.
    pub fn with_pushed(mut self, dir: PathBuf) -> Self {
        self.pushed = Some(dir);
        self
    }

    /// Every plugin's status, by name.
    pub fn status(&self) -> Vec<PluginStatus> {
        self.slots()
            .iter()
            .map(|(name, slot)| PluginStatus {
                name: name.clone(),
                state: if slot.rejected.is_some() {
                    State::Rejected
                } else if slot.serving.is_some() {
                    State::Serving
                } else if slot.declared.is_some() {
                    State::Waiting
                } else {
                    State::Unloaded
                },
                serving: slot.serving.clone(),
                rejected: slot.rejected.clone(),
                unloaded_at: slot.unloaded_at,
                history: slot.history.clone(),
                waiting: slot.serving.is_none() && slot.declared.is_some(),
            })
            .collect()
    }

    /// The serving version of `name`.
    pub fn serving(&self, name: &str) -> Option<Serving> {
        self.slots().get(name).and_then(|s| s.serving.clone())
    }

    fn slots(&self) -> MutexGuard<'_, BTreeMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set `name`'s serving version and publish the new set in one store.
    fn publish(&self, name: &str, serving: Option<Serving>, update: impl FnOnce(&mut Slot)) {
        let mut slots = self.slots();
        let slot = slots.entry(name.to_string()).or_default();
        slot.serving = serving;
        update(slot);
        let set: Vec<Arc<dyn Target>> = slots
            .iter()
            .filter_map(|(name, s)| match (&s.serving, &s.declared) {
                (Some(serving), _) => Some(serving.target.clone() as Arc<dyn Target>),
                (None, Some(declared)) => {
                    Some(DeclaredTarget::new(name, declared.clone()) as Arc<dyn Target>)
                }
                (None, None) => None,
            })
            .collect();
        let serving = set.iter().filter(|t| t.serving()).count();
        metrics::gauge!("gridlet_plugins_serving").set(serving as f64);
        self.serving.store(Arc::new(set));
        self.changed.notify_one();
    }
}

impl Targets for Registry {
    fn current(&self) -> Vec<Arc<dyn Target>> {
        self.serving.load().as_ref().clone()
    }

    fn attempts(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.guest_pool()
    }

    fn changed(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.changed.clone())
    }
}

/// The first 12 hex digits of a content hash, for logs.
pub fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
