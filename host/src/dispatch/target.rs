//! Plugins as dispatch sees them: a name, a filter, a policy and a way to
//! deliver. The plugin stage implements [`Target`] over the runtime.

use crate::event::Event;
use std::sync::Arc;
use std::time::Duration;

/// How a delivery ended, as dispatch needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Handled.
    Done,
    /// Try again later (a `retry`, a trap, a limit).
    Retry(String),
    /// Never try again (a `reject`).
    DeadLetter(String),
    /// Not attempted (no instance could be had): due again soon, and the
    /// attempt does not count.
    Postpone(String),
}

/// A plugin's delivery policy (its manifest's `[retry]` and concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// Age after which the event is dead-lettered instead of attempted.
    pub time_to_live: Duration,
    /// Deliveries of this plugin running at once (claimed: up to
    /// [`CLAIM_DEPTH`](super::CLAIM_DEPTH) times as many).
    pub max_concurrency: u32,
    /// Deliveries of this plugin held at once by every host sharing the
    /// journal (its manifest's `max_concurrency`; this host may be granted
    /// fewer). Only a shared journal enforces it.
    pub overall_concurrency: u32,
}

/// A plugin, as dispatch sees it.
#[async_trait::async_trait]
pub trait Target: Send + Sync + 'static {
    /// Its name.
    fn name(&self) -> &str;
    /// Does its filter let `event` through?
    fn accepts(&self, event: &Event) -> bool;
    /// Its retry and concurrency policy.
    fn policy(&self) -> Policy;
    /// Does a version serve? A plugin that is declared (its files were
    /// refused, or the operator names it) but not serving still gets its
    /// deliveries, kept until a version serves.
    fn serving(&self) -> bool {
        true
    }
    /// Deliver one event.
    async fn deliver(&self, event: Arc<Event>, attempt: u32) -> Verdict;
}

/// The plugins serving right now.
pub trait Targets: Send + Sync + 'static {
    /// A snapshot of the current plugins.
    fn current(&self) -> Vec<Arc<dyn Target>>;
    /// Where attempts run (default: the caller's runtime). The plugin
    /// stage names the guest pool, so the call inside an attempt runs where
    /// it starts, without a hand-off between threads and back.
    fn attempts(&self) -> Option<tokio::runtime::Handle> {
        None
    }
    /// Notified (one permit kept, so a change is never missed) whenever the
    /// set changes: a version starts serving, a plugin is declared or
    /// removed. Dispatch then claims at once for a plugin that just began
    /// to serve, instead of at its next idle turn. None: dispatch looks
    /// again only when it would anyway.
    fn changed(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}
