//! The watcher: file-system events in the plugins folder become reconciles
//! of the plugins they touch, debounced per plugin.
//!
//! `<name>.wasm` and `<name>.toml` are one plugin: changes to both within the
//! quiet period are one reload. A file still open for writing (created or
//! modified, not yet closed) is not read until it is closed, or until it has
//! been quiet for [`WatchSettings::stale_after`] (a writer that holds the file
//! open). A rename into place is complete at once. Whatever is read is
//! validated before it can serve, so even a file caught half-written is
//! rejected, never loaded.

use super::registry::Registry;
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How changes are debounced.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// Quiet time after a plugin's last change before it is reloaded.
    pub debounce: Duration,
    /// A file still open for writing is read anyway after this much quiet.
    pub stale_after: Duration,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(20),
            stale_after: Duration::from_secs(2),
        }
    }
}

/// Watches a folder until dropped.
pub struct Watcher {
    _watcher: RecommendedWatcher,
}

impl Watcher {
    /// Watch `registry`'s folder and reconcile what changes, on a thread of
    /// its own (compiling is blocking work).
    pub fn start(registry: Arc<Registry>, settings: WatchSettings) -> notify::Result<Self> {
        let (tx, rx) = channel();
        let mut watcher = notify::recommended_watcher(tx)?;
        watcher.watch(registry.dir(), RecursiveMode::NonRecursive)?;
        std::thread::Builder::new()
            .name("gridlet-watch".into())
            .spawn(move || debounce(rx, &registry, settings))
            .map_err(notify::Error::io)?;
        Ok(Self { _watcher: watcher })
    }
}

/// A plugin with changes not yet reconciled.
struct Pending {
    last: Instant,
    /// Created or modified and not closed since.
    writing: bool,
}

/// Collect events per plugin; reconcile each once it has been quiet. Ends
/// when the watcher is dropped.
fn debounce(rx: Receiver<notify::Result<notify::Event>>, registry: &Registry, s: WatchSettings) {
    let mut pending: HashMap<String, Pending> = HashMap::new();
    loop {
        let now = Instant::now();
        let wait = pending
            .values()
            .map(|p| ready_at(p, s).saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(wait) {
            Ok(Ok(event)) => note(&mut pending, event),
            Ok(Err(e)) => tracing::warn!("watching {}: {e}", registry.dir().display()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let due: Vec<String> = pending
            .iter()
            .filter(|(_, p)| ready_at(p, s) <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            pending.remove(&name);
            registry.reconcile(&name);
        }
    }
}

fn ready_at(p: &Pending, s: WatchSettings) -> Instant {
    p.last + if p.writing { s.stale_after } else { s.debounce }
}

/// Record what `event` says about the plugins it touches.
fn note(pending: &mut HashMap<String, Pending>, event: notify::Event) {
    let writing = match event.kind {
        EventKind::Create(CreateKind::File) | EventKind::Modify(ModifyKind::Data(_)) => Some(true),
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(_))
        | EventKind::Remove(_) => Some(false),
        // Our own reads (open, close-nowrite) and metadata: nothing changed.
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => None,
        _ => Some(false),
    };
    let Some(writing) = writing else { return };
    for path in &event.paths {
        if let Some(name) = plugin_of(path) {
            let p = pending.entry(name).or_insert(Pending {
                last: Instant::now(),
                writing,
            });
            p.last = Instant::now();
            p.writing = writing;
        }
    }
}

/// The plugin a path in the folder belongs to: `<name>.wasm` or `<name>.toml`
/// with a valid plugin name (anything else, temporary files included, is
/// not a plugin's file).
fn plugin_of(path: &Path) -> Option<String> {
    let ext = path.extension()?;
    if ext != "wasm" && ext != "toml" {
        return None;
    }
    super::plugin_name(path).ok()
}
