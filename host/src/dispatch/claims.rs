//! Claims: which deliveries the dispatcher holds (in memory, never in the
//! journal: after a crash every delivery without an outcome is simply due
//! again), and the permits that cap how many of a plugin's claims run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Deliveries claimed per unit of a plugin's `max_concurrency`. A delivery
/// keeps its claim until its outcome is committed, which takes longer than
/// running a trivial plugin; the runtime still runs at most
/// `max_concurrency` at once, the others wait for a permit in memory.
pub const CLAIM_DEPTH: u32 = 8;

/// Deliveries being attempted (claims live here, not in the journal).
#[derive(Default)]
pub(super) struct Running {
    /// Each claimed delivery's plugin.
    pub(super) plugin_of: HashMap<i64, String>,
    /// Claimed deliveries per plugin.
    pub(super) per_plugin: HashMap<String, u32>,
}

impl Running {
    /// Delivery `id` of `plugin` is claimed.
    pub(super) fn claim(&mut self, id: i64, plugin: &str) {
        self.plugin_of.insert(id, plugin.to_string());
        *self.per_plugin.entry(plugin.to_string()).or_default() += 1;
    }

    /// The ids in flight, by plugin.
    pub(super) fn by_plugin(&self) -> HashMap<&str, Vec<i64>> {
        let mut ids: HashMap<&str, Vec<i64>> = HashMap::new();
        for (id, plugin) in &self.plugin_of {
            ids.entry(plugin.as_str()).or_default().push(*id);
        }
        ids
    }

    /// Delivery `id` of `plugin` is let go.
    pub(super) fn finish(&mut self, id: i64, plugin: &str) {
        self.plugin_of.remove(&id);
        if let Some(n) = self.per_plugin.get_mut(plugin) {
            *n = n.saturating_sub(1);
        }
    }
}

/// Per plugin, `max_concurrency` permits to run (claims may outnumber them:
/// see [`CLAIM_DEPTH`]), with the size they were made for.
#[derive(Default)]
pub(super) struct Gates(Mutex<HashMap<String, (u32, Arc<Semaphore>)>>);

impl Gates {
    /// The permits `plugin` runs its deliveries under; a changed
    /// `max_concurrency` (a reload) gets a new set.
    pub(super) fn of(&self, plugin: &str, max_concurrency: u32) -> Arc<Semaphore> {
        let mut gates = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match gates.get(plugin) {
            Some((size, gate)) if *size == max_concurrency => gate.clone(),
            _ => {
                let gate = Arc::new(Semaphore::new(max_concurrency.max(1) as usize));
                gates.insert(plugin.to_string(), (max_concurrency, gate.clone()));
                gate
            }
        }
    }
}
