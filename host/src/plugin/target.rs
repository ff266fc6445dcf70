//! Plugins as dispatch targets: the plugin's filter decides what it gets,
//! the runtime delivers, and the outcome becomes dispatch's verdict.

use super::LoadedPlugin;
use crate::dispatch::{Policy, Target, Verdict};
use crate::event::Event;
use crate::runtime::{Outcome, Runtime};
use std::sync::Arc;

/// One loaded plugin on a runtime.
pub struct PluginTarget {
    runtime: Arc<Runtime>,
    plugin: LoadedPlugin,
}

impl PluginTarget {
    /// Serve `plugin` on `runtime`.
    pub fn new(runtime: Arc<Runtime>, plugin: LoadedPlugin) -> Self {
        Self { runtime, plugin }
    }

    /// The plugin.
    pub fn plugin(&self) -> &LoadedPlugin {
        &self.plugin
    }
}

#[async_trait::async_trait]
impl Target for PluginTarget {
    fn name(&self) -> &str {
        self.plugin.version.name()
    }

    fn accepts(&self, event: &Event) -> bool {
        self.plugin.filter.matches(event)
    }

    fn policy(&self) -> Policy {
        Policy {
            max_attempts: self.plugin.retry.max_delivery_attempts,
            time_to_live: self.plugin.retry.event_time_to_live,
            max_concurrency: self.plugin.version.limits().max_concurrency,
        }
    }

    async fn deliver(&self, event: &Event, attempt: u32) -> Verdict {
        match self
            .runtime
            .invoke(&self.plugin.version, event, attempt)
            .await
            .outcome
        {
            Outcome::Handled => Verdict::Done,
            Outcome::Reject(why) => Verdict::DeadLetter(why),
            other => Verdict::Retry(other.to_string()),
        }
    }
}
