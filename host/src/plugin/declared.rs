//! Plugins that are declared but not serving: their files were refused
//! (with a manifest that could be read, so their filter is known), or the
//! operator names them in gridlet.toml before any good file arrived. Events
//! for them are still accepted and their deliveries kept — not attempted —
//! until a good version loads, as an Event Grid subscription keeps events
//! for an endpoint that is down. Their time-to-live still applies.

use super::manifest::Manifest;
use crate::dispatch::{Policy, Target, Verdict};
use crate::event::Event;
use crate::filter::Filter;
use std::sync::Arc;

/// What is known of a declared plugin.
#[derive(Debug, Clone)]
pub struct Declared {
    /// Which events it gets (every event when no manifest could be read).
    pub filter: Filter,
    /// Its retry policy and concurrency.
    pub policy: Policy,
}

impl Declared {
    /// Declared with what `manifest` says (the defaults when there is none).
    pub fn from_manifest(manifest: &Manifest) -> Self {
        Self {
            filter: manifest.filter.clone(),
            policy: Policy {
                max_attempts: manifest.retry.max_delivery_attempts,
                time_to_live: manifest.retry.event_time_to_live,
                max_concurrency: manifest.declared_concurrency(),
                overall_concurrency: manifest.declared_concurrency(),
            },
        }
    }
}

/// A declared plugin as dispatch sees it: it matches events, but nothing
/// serves them yet.
pub struct DeclaredTarget {
    name: String,
    declared: Declared,
}

impl DeclaredTarget {
    /// Plugin `name`, declared as `declared`.
    pub fn new(name: &str, declared: Declared) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            declared,
        })
    }
}

#[async_trait::async_trait]
impl Target for DeclaredTarget {
    fn name(&self) -> &str {
        &self.name
    }

    fn accepts(&self, event: &Event) -> bool {
        self.declared.filter.matches(event)
    }

    fn policy(&self) -> Policy {
        self.declared.policy
    }

    fn serving(&self) -> bool {
        false
    }

    async fn deliver(&self, _: Arc<Event>, _: u32) -> Verdict {
        Verdict::Postpone(format!("plugin `{}` has no version serving", self.name))
    }
}
