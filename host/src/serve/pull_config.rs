//! `[[pull]]` in gridlet.toml: Event Grid namespace subscriptions gridlet
//! pulls from. A source can also come whole from the environment
//! (`GRIDLET_PULL_ENDPOINT`, `_TOPIC`, `_SUBSCRIPTION`, `_KEY` or
//! `_TOKEN_FILE`), and a key may be written `${VAR}` to keep it out of the
//! file.

use crate::plugin::grants::expand_env;
use crate::pull::{Credential, PullSettings, ReleaseDelay, Subscription};
use anyhow::{Context, bail};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// One `[[pull]]` entry, as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// Name in logs, metrics and status (default `<topic>/<subscription>`).
    pub name: Option<String>,
    /// `https://{namespace}.{region}-1.eventgrid.azure.net`.
    pub endpoint: Option<String>,
    /// The namespace topic.
    pub topic: Option<String>,
    /// The event subscription (queue delivery).
    pub subscription: Option<String>,
    /// A namespace access key (`${VAR}` expanded).
    pub key: Option<String>,
    /// A file holding an Entra ID token, read at every call.
    pub token_file: Option<PathBuf>,
    /// Events per receive, 1–100 (default 100).
    pub max_events: Option<u32>,
    /// Longest wait for events per receive, 10–120 s (default 60).
    pub max_wait_seconds: Option<u64>,
    /// Receive loops at once (default 1).
    pub concurrency: Option<u32>,
    /// Seconds a batch the journal cannot take waits before it is
    /// delivered again: 0, 10, 60, 600 or 3600 (default 10).
    pub busy_release_delay_seconds: Option<u32>,
}

impl PullConfig {
    /// The source from the environment, if `GRIDLET_PULL_ENDPOINT` is set.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let var = |name: &str| env(&format!("GRIDLET_PULL_{name}")).filter(|v| !v.is_empty());
        Some(Self {
            endpoint: Some(var("ENDPOINT")?),
            topic: var("TOPIC"),
            subscription: var("SUBSCRIPTION"),
            key: var("KEY"),
            token_file: var("TOKEN_FILE").map(PathBuf::from),
            ..Self::default()
        })
    }

    /// Validate; errors name the entry and the key, never a value.
    pub fn build(
        self,
        index: usize,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<PullSettings> {
        let at = |key: &str| format!("pull[{index}].{key}");
        let endpoint = self
            .endpoint
            .with_context(|| format!("{} is required", at("endpoint")))?;
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            bail!("{}: must be an http(s) URL", at("endpoint"));
        }
        let topic = self
            .topic
            .with_context(|| format!("{} is required", at("topic")))?;
        let subscription = self
            .subscription
            .with_context(|| format!("{} is required", at("subscription")))?;
        let credential = match (self.key, self.token_file) {
            (Some(key), None) => {
                let key =
                    expand_env(&key, env).map_err(|e| anyhow::anyhow!("{}: {e}", at("key")))?;
                if key.is_empty() {
                    bail!("{}: is empty", at("key"));
                }
                Credential::Key(key)
            }
            (None, Some(file)) => Credential::TokenFile(file),
            _ => bail!("pull[{index}] needs exactly one of key and token_file"),
        };
        let mut s = PullSettings::new(Subscription {
            endpoint,
            topic,
            subscription,
            credential,
        });
        if let Some(name) = self.name {
            s.name = name;
        }
        if let Some(n) = self.max_events {
            if !(1..=100).contains(&n) {
                bail!("{}: must be 1 to 100", at("max_events"));
            }
            s.max_events = n;
        }
        if let Some(secs) = self.max_wait_seconds {
            if !(10..=120).contains(&secs) {
                bail!("{}: must be 10 to 120", at("max_wait_seconds"));
            }
            s.max_wait = Duration::from_secs(secs);
        }
        if let Some(n) = self.concurrency {
            if n == 0 {
                bail!("{}: must be at least 1", at("concurrency"));
            }
            s.concurrency = n;
        }
        if let Some(secs) = self.busy_release_delay_seconds {
            s.busy_release_delay = match secs {
                0 => ReleaseDelay::None,
                10 => ReleaseDelay::TenSeconds,
                60 => ReleaseDelay::OneMinute,
                600 => ReleaseDelay::TenMinutes,
                3600 => ReleaseDelay::OneHour,
                _ => bail!(
                    "{}: must be 0, 10, 60, 600 or 3600",
                    at("busy_release_delay_seconds")
                ),
            };
        }
        Ok(s)
    }
}
