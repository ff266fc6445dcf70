//! What the registry says about each plugin: what a reconcile did, the
//! state it is in, the version serving and the files rejected.

use super::cache::Compiled;
use super::target::{History, PluginTarget};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use wasmtime::component::Component;

/// What a reconcile did to one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A plugin that was not serving now is.
    Loaded {
        /// The new version's content hash.
        hash: String,
    },
    /// A new version replaced the serving one (or the manifest changed).
    Replaced {
        /// The version that served until now.
        old: String,
        /// The version serving from now on.
        new: String,
    },
    /// The files match what serves already.
    Unchanged,
    /// The files could not become a version; whatever served still serves.
    Rejected {
        /// Why.
        reason: String,
    },
    /// The `.wasm` is gone; the plugin no longer receives events.
    Unloaded,
}

/// A plugin's state, as `gridlet plugins` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its newest files serve.
    Serving,
    /// Its newest files were rejected; the previous version (if any) serves
    /// until they are fixed.
    Rejected,
    /// Its `.wasm` was removed.
    Unloaded,
    /// The operator names it, but no file of it has loaded yet.
    Waiting,
}

impl State {
    /// The word the status uses.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Serving => "serving",
            State::Rejected => "rejected",
            State::Unloaded => "unloaded",
            State::Waiting => "waiting",
        }
    }
}

/// A file that was not loaded.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The rejected `.wasm`'s content hash, when it could be read.
    pub hash: Option<String>,
    /// Why it was rejected.
    pub reason: String,
    /// When.
    pub at: SystemTime,
}

/// The version that serves.
#[derive(Clone)]
pub struct Serving {
    /// Its content hash.
    pub hash: String,
    /// The target deliveries go to.
    pub target: Arc<PluginTarget>,
    /// When it started serving.
    pub loaded_at: SystemTime,
    /// Where its compiled code came from.
    pub compiled: Compiled,
    /// How long compiling (or loading) and linking took.
    pub load_time: Duration,
    pub(super) component: Component,
    pub(super) manifest_text: Option<String>,
}

/// One plugin's status.
#[derive(Clone)]
pub struct PluginStatus {
    /// Its name.
    pub name: String,
    /// Serving, rejected or unloaded.
    pub state: State,
    /// The version serving, if any.
    pub serving: Option<Serving>,
    /// The newest rejected files, until fixed.
    pub rejected: Option<Rejection>,
    /// When its `.wasm` was removed.
    pub unloaded_at: Option<SystemTime>,
    /// Its recent invocations, across versions.
    pub history: Arc<History>,
    /// No version serves, and its deliveries are kept until one does.
    pub waiting: bool,
}
