//! The plugin manifest: `<name>.toml` beside `<name>.wasm`, optional. It is
//! the plugin author's file, so it can only *ask*: for limits, for config
//! keys, for hosts to call. What the plugin gets is decided by the operator
//! in gridlet.toml (see [`super::grants`]).
//!
//! ```toml
//! [limits]                 # all optional; up to the operator's caps
//! memory_mib = 64
//! deadline_ms = 10000
//! fuel = 5_000_000_000
//! max_concurrency = 4
//! reuse_instance = 100     # opt-in: one instance serves up to 100 deliveries
//!
//! [config]                 # the keys the plugin reads; values come from the operator
//! webhook_url = { required = true }
//! channel = { default = "#ml-alerts" }   # a literal default
//!
//! [outbound]               # hosts it calls; reachable only where the operator granted them
//! hosts = ["hooks.example.com", "*.example.org:8443"]
//!
//! [filter]                 # Event Grid's filter keys, camelCase as in `az` output
//! includedEventTypes = ["Microsoft.MachineLearningServices.ModelRegistered"]
//!
//! [retry]                  # Event Grid's retry policy keys
//! maxDeliveryAttempts = 10
//! eventTimeToLiveInMinutes = 120
//! ```
//!
//! Unknown keys and bad values are errors naming the file, the line and the
//! key, never a value (a manifest may hold something that looks secret).
//! `${...}` is refused: a plugin's files cannot read the host's environment.

use crate::filter::{Filter, FilterSpec};
use crate::runtime::http::AllowedHost;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A parsed, validated manifest: what the plugin asks for.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// Resource limits it asks for (unset: the defaults).
    pub limits: RequestedLimits,
    /// The config keys it reads, and how.
    pub config: BTreeMap<String, ConfigKey>,
    /// The hosts it calls.
    pub outbound: Vec<AllowedHost>,
    /// Which events the plugin receives.
    pub filter: Filter,
    /// How failed deliveries are retried.
    pub retry: RetryPolicy,
}

/// Limits a manifest asks for; `None` takes the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestedLimits {
    /// Linear memory, in bytes.
    pub memory_bytes: Option<usize>,
    /// Wall-clock time per delivery.
    pub deadline: Option<Duration>,
    /// Fuel per delivery.
    pub fuel: Option<u64>,
    /// Deliveries at once.
    pub max_concurrency: Option<u32>,
    /// Deliveries per reused instance (0: fresh instance each time).
    pub reuse_instance: Option<u32>,
}

/// How a plugin reads one config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigKey {
    /// The plugin cannot work without it: a version is refused until the
    /// operator sets it.
    Required,
    /// Used when the operator sets nothing (a literal, never `${...}`).
    Default(String),
    /// Read if the operator sets it; absent otherwise.
    Optional,
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
    config: BTreeMap<String, toml::Value>,
    #[serde(default)]
    outbound: RawOutbound,
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
struct RawOutbound {
    #[serde(default)]
    hosts: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRetry {
    max_delivery_attempts: Option<u32>,
    event_time_to_live_in_minutes: Option<u64>,
}

/// What a manifest says when it tries to read the host's environment.
const NO_ENV: &str = "a plugin's manifest cannot read the host's environment (`${...}`); \
    the operator sets values in gridlet.toml under [plugins.<name>.config]";

impl Manifest {
    /// Deliveries at once it declares (the default when it does not): the
    /// bound across every host of a cluster.
    pub fn declared_concurrency(&self) -> u32 {
        self.limits
            .max_concurrency
            .unwrap_or(crate::runtime::Limits::default().max_concurrency)
    }

    /// Read and validate a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            file: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parse and validate manifest text (`file` names it in errors).
    pub fn parse(text: &str, file: &Path) -> Result<Self, ManifestError> {
        let error = |message: String| ManifestError {
            file: file.to_path_buf(),
            message,
        };
        let table: toml::Table = toml::from_str(text).map_err(|e| error(locate(text, &e)))?;
        if table.contains_key("grants") {
            return Err(error(
                "[grants] is not read from a plugin's manifest: the operator grants config \
                 values and hosts in gridlet.toml under [plugins.<name>]; declare the keys the \
                 plugin reads under [config] and the hosts it calls under [outbound]"
                    .into(),
            ));
        }
        let raw: Raw = toml::from_str(text).map_err(|e| error(locate(text, &e)))?;
        let limits = RequestedLimits {
            memory_bytes: match raw.limits.memory_mib {
                None => None,
                Some(m @ 1..=4096) => Some((m as usize) * 1024 * 1024),
                Some(m) => {
                    return Err(error(format!(
                        "limits.memory_mib: {m} is not between 1 and 4096"
                    )));
                }
            },
            deadline: match raw.limits.deadline_ms {
                None => None,
                Some(ms @ 1..=600_000) => Some(Duration::from_millis(ms)),
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
                None => None,
                Some(n @ 1..=1024) => Some(n),
                Some(n) => {
                    return Err(error(format!(
                        "limits.max_concurrency: {n} is not between 1 and 1024"
                    )));
                }
            },
            reuse_instance: match raw.limits.reuse_instance {
                None => None,
                Some(n @ 0..=100_000) => Some(n),
                Some(n) => {
                    return Err(error(format!(
                        "limits.reuse_instance: {n} is not between 0 (off) and 100000"
                    )));
                }
            },
        };
        let mut config = BTreeMap::new();
        for (key, declared) in raw.config {
            let declared =
                config_key(&declared).map_err(|e| error(format!("config.{key}: {e}")))?;
            config.insert(key, declared);
        }
        let mut outbound = Vec::new();
        for (i, entry) in raw.outbound.hosts.iter().enumerate() {
            if entry.contains("${") {
                return Err(error(format!("outbound.hosts[{i}]: {NO_ENV}")));
            }
            let host = AllowedHost::parse(entry)
                .map_err(|e| error(format!("outbound.hosts[{i}]: {e}")))?;
            outbound.push(host);
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
            config,
            outbound,
            filter,
            retry,
        })
    }
}

/// One `[config]` entry: `"literal default"`, `{ required = true }`,
/// `{ default = "..." }` or `{}` (optional). Errors never quote the value.
fn config_key(value: &toml::Value) -> Result<ConfigKey, String> {
    let literal = |v: &toml::Value| match v {
        toml::Value::String(s) if s.contains("${") => Err(NO_ENV.to_string()),
        toml::Value::String(s) => Ok(s.clone()),
        _ => Err("a default must be a string".to_string()),
    };
    match value {
        toml::Value::String(_) => literal(value).map(ConfigKey::Default),
        toml::Value::Table(table) => {
            if let Some(other) = table.keys().find(|k| *k != "required" && *k != "default") {
                return Err(format!(
                    "unknown key `{other}`: expected `required` or `default`"
                ));
            }
            let required = match table.get("required") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => return Err("`required` must be true or false".into()),
            };
            match (required, table.get("default")) {
                (true, Some(_)) => {
                    Err("a key is either required or has a default, not both".into())
                }
                (true, None) => Ok(ConfigKey::Required),
                (false, Some(default)) => literal(default).map(ConfigKey::Default),
                (false, None) => Ok(ConfigKey::Optional),
            }
        }
        _ => Err(
            "expected a string default, `{ required = true }`, `{ default = \"...\" }` or `{}`"
                .into(),
        ),
    }
}

/// Where a TOML error is and what is wrong, in one line, without quoting
/// the file: the line number, the key on that line, and toml's reason with
/// any quoted value taken out (a file may hold secrets).
pub fn locate(text: &str, e: &toml::de::Error) -> String {
    let message = scrub(e.message());
    let Some(span) = e.span() else {
        return message;
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let source = text.lines().nth(line - 1).unwrap_or("").trim();
    // `key = value`: the key, never the value; a `[section]` header as is.
    let key = match source.split_once('=') {
        Some((key, _)) => key.trim(),
        None if source.starts_with('[') => source,
        None => "",
    };
    if key.is_empty() || key.len() > 80 {
        format!("line {line}: {message}")
    } else {
        format!("line {line} (`{key}`): {message}")
    }
}

/// `message` with every double-quoted part replaced by `"…"`: serde's
/// messages quote the offending value (`invalid type: string "..."`).
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '"' if quoted => {
                out.push_str("…\"");
                quoted = false;
            }
            '"' => {
                out.push('"');
                quoted = true;
            }
            _ if quoted => {}
            c => out.push(c),
        }
    }
    if quoted {
        out.push('…');
    }
    out
}
