//! The plugin manifest: `<name>.toml` beside `<name>.wasm`, optional.
//!
//! ```toml
//! [limits]                 # all optional; defaults in docs/MANIFEST.md
//! memory_mib = 64
//! deadline_ms = 10000
//! fuel = 5_000_000_000
//! max_concurrency = 4
//! reuse_instance = 100     # opt-in: one instance serves up to 100 deliveries
//!
//! [grants]
//! allowed_hosts = ["hooks.example.com", "*.example.org:8443", "${DEPLOY_HOST:-}"]
//! [grants.config]
//! webhook_url = "${ALERT_WEBHOOK_URL}"           # from the host's environment
//! channel = "${ALERT_CHANNEL:-#ml-alerts}"       # with a default
//!
//! [filter]                 # Event Grid's filter keys, camelCase as in `az` output
//! includedEventTypes = ["Microsoft.MachineLearningServices.ModelRegistered"]
//!
//! [retry]                  # Event Grid's retry policy keys
//! maxDeliveryAttempts = 10
//! eventTimeToLiveInMinutes = 120
//! ```
//!
//! Unknown keys and bad values are errors naming the file, the key and why.

use crate::filter::{Filter, FilterSpec};
use crate::runtime::{AllowList, ConfigValues, Grants, Limits};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A parsed, validated manifest.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Resource limits per delivery.
    pub limits: Limits,
    /// Capabilities granted.
    pub grants: Grants,
    /// Which events the plugin receives.
    pub filter: Filter,
    /// How failed deliveries are retried.
    pub retry: RetryPolicy,
}

/// Event Grid's retry policy, per plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before the delivery is dead-lettered (1–30, default 30).
    pub max_delivery_attempts: u32,
    /// Age after which it is dead-lettered (1 min–24 h, default 24 h).
    pub event_time_to_live: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_delivery_attempts: 30,
            event_time_to_live: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// A manifest that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct ManifestError {
    /// The manifest file.
    pub file: PathBuf,
    /// The key and what is wrong with it.
    pub message: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    grants: RawGrants,
    #[serde(default)]
    filter: FilterSpec,
    #[serde(default)]
    retry: RawRetry,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mib: Option<u64>,
    deadline_ms: Option<u64>,
    fuel: Option<u64>,
    max_concurrency: Option<u32>,
    reuse_instance: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrants {
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    config: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRetry {
    max_delivery_attempts: Option<u32>,
    event_time_to_live_in_minutes: Option<u64>,
}

impl Manifest {
    /// Read and validate a manifest file, expanding `${ENV}` from the process
    /// environment.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            file: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path, &|name| std::env::var(name).ok())
    }

    /// Parse and validate manifest text; `env` looks up `${NAME}`.
    pub fn parse(
        text: &str,
        file: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ManifestError> {
        let error = |message: String| ManifestError {
            file: file.to_path_buf(),
            message,
        };
        let raw: Raw = toml::from_str(text).map_err(|e| error(locate(text, &e)))?;
        let defaults = Limits::default();
        let limits = Limits {
            memory_bytes: match raw.limits.memory_mib {
                None => defaults.memory_bytes,
                Some(m @ 1..=4096) => (m as usize) * 1024 * 1024,
                Some(m) => {
                    return Err(error(format!(
                        "limits.memory_mib: {m} is not between 1 and 4096"
                    )));
                }
            },
            deadline: match raw.limits.deadline_ms {
                None => defaults.deadline,
                Some(ms @ 1..=600_000) => Duration::from_millis(ms),
                Some(ms) => {
                    return Err(error(format!(
                        "limits.deadline_ms: {ms} is not between 1 and 600000 (10 minutes)"
                    )));
                }
            },
            fuel: match raw.limits.fuel {
                Some(0) => {
                    return Err(error(
                        "limits.fuel: must be above 0 (leave it out for no fuel limit)".into(),
                    ));
                }
                fuel => fuel,
            },
            max_concurrency: match raw.limits.max_concurrency {
                None => defaults.max_concurrency,
                Some(n @ 1..=1024) => n,
                Some(n) => {
                    return Err(error(format!(
                        "limits.max_concurrency: {n} is not between 1 and 1024"
                    )));
                }
            },
            reuse_instance: match raw.limits.reuse_instance {
                None => defaults.reuse_instance,
                Some(n @ 0..=100_000) => n,
                Some(n) => {
                    return Err(error(format!(
                        "limits.reuse_instance: {n} is not between 0 (off) and 100000"
                    )));
                }
            },
        };
        // Hosts may come from the environment too (a deployment's own
        // endpoint); an entry that expands to "" grants nothing.
        let mut hosts = Vec::new();
        for (i, entry) in raw.grants.allowed_hosts.iter().enumerate() {
            let host = expand_env(entry, env)
                .map_err(|e| error(format!("grants.allowed_hosts[{i}]: {e}")))?;
            if !host.is_empty() {
                hosts.push(host);
            }
        }
        let allowed_hosts =
            AllowList::parse(&hosts).map_err(|e| error(format!("grants.allowed_hosts: {e}")))?;
        let mut config = ConfigValues::default();
        for (key, value) in &raw.grants.config {
            let value =
                expand_env(value, env).map_err(|e| error(format!("grants.config.{key}: {e}")))?;
            config.insert(key.clone(), value);
        }
        let filter = Filter::from_spec(&raw.filter).map_err(|e| error(format!("filter.{e}")))?;
        let retry_defaults = RetryPolicy::default();
        let retry = RetryPolicy {
            max_delivery_attempts: match raw.retry.max_delivery_attempts {
                None => retry_defaults.max_delivery_attempts,
                Some(n @ 1..=30) => n,
                Some(n) => {
                    return Err(error(format!(
                        "retry.maxDeliveryAttempts: {n} is not between 1 and 30"
                    )));
                }
            },
            event_time_to_live: match raw.retry.event_time_to_live_in_minutes {
                None => retry_defaults.event_time_to_live,
                Some(m @ 1..=1440) => Duration::from_secs(m * 60),
                Some(m) => {
                    return Err(error(format!(
                        "retry.eventTimeToLiveInMinutes: {m} is not between 1 and 1440"
                    )));
                }
            },
        };
        Ok(Self {
            limits,
            grants: Grants {
                allowed_hosts,
                config,
            },
            filter,
            retry,
        })
    }
}

/// toml's own message spans several lines with an excerpt; say the same in
/// one line: where, the line itself (which names the key), and why.
fn locate(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.message().to_string();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let source = text.lines().nth(line - 1).unwrap_or("").trim();
    format!("line {line} (`{source}`): {}", e.message())
}

/// Expand `${NAME}` and `${NAME:-default}`. The error names the variable,
/// never a value.
pub fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`${{` without a closing `}}` in {value:?}"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(format!(
                "`${{{name}}}` is not a valid environment variable name"
            ));
        }
        match (env(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
