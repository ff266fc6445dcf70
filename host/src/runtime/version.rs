//! A compiled plugin version: its pre-linked component, limits and grants,
//! its concurrency and outbound-connection permits, and the instances kept
//! for reuse.

use super::activity::{LogRate, Source};
use super::handler::Handler;
use super::keyvalue::{KvPace, KvPaces};
use super::reuse::WarmInstance;
use super::store::Shared;
use super::{Grants, Limits, RuntimeSettings};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Semaphore;

/// A compiled plugin, ready to instantiate: one per loaded version.
pub struct PluginVersion {
    pub(super) name: Arc<str>,
    pub(super) handler: Handler,
    pub(super) limits: Limits,
    pub(super) grants: Grants,
    pub(super) permits: Arc<Semaphore>,
    /// What its deliveries share: the cap on open connections, the pace
    /// of key-value writes.
    pub(super) shared: Shared,
    /// Instances kept for reuse (`limits.reuse_instance`), idle ones only.
    kept: Mutex<Vec<WarmInstance>>,
    /// Its identity for logs (name, version, config to redact, log rate).
    pub(super) source: Arc<Source>,
    /// Instances kept across every version (this one's leave with it).
    kept_total: Arc<AtomicUsize>,
    _alive: Alive,
}

impl Drop for PluginVersion {
    fn drop(&mut self) {
        let kept = self.kept().len();
        self.kept_total.fetch_sub(kept, Ordering::SeqCst);
    }
}

/// Counts a version while it exists, so the runtime can tell how many
/// versions (serving, or draining after a swap) hold compiled code.
pub(super) struct Alive(Arc<AtomicUsize>);

impl Alive {
    pub(super) fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PluginVersion {
    pub(super) fn new(
        name: Arc<str>,
        handler: Handler,
        limits: Limits,
        grants: Grants,
        settings: &RuntimeSettings,
        alive: Alive,
        kept_total: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            source: Arc::new(Source {
                plugin: name.clone(),
                version: "".into(),
                config: grants.config.clone(),
                rate: LogRate::default(),
            }),
            name,
            handler,
            limits,
            grants,
            permits: Arc::new(Semaphore::new(limits.max_concurrency.max(1) as usize)),
            shared: Shared {
                connections: Arc::new(Semaphore::new(settings.http.max_connections.max(1))),
                kv_pace: Arc::new(KvPaces {
                    write: KvPace::new(limits.kv_write_bytes_per_second),
                    read: KvPace::new(limits.kv_read_bytes_per_second),
                }),
                busy_turns: Arc::new(Semaphore::new(settings.guest_threads.max(1))),
            },
            kept: Mutex::default(),
            kept_total,
            _alive: alive,
        }
    }

    /// The plugin's name (its key-value namespace).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Its grants.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// Label this version (its short content hash) in log lines.
    pub fn with_version(mut self, version: &str) -> Self {
        self.source = Arc::new(Source {
            plugin: self.name.clone(),
            version: version.into(),
            config: self.grants.config.clone(),
            rate: LogRate::default(),
        });
        self
    }

    /// Its version label ("" when not labelled).
    pub fn version(&self) -> &str {
        &self.source.version
    }

    pub(super) fn kept(&self) -> MutexGuard<'_, Vec<WarmInstance>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}
