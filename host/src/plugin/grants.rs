//! What the operator grants each plugin, and how a plugin's manifest (what
//! it asks for) is resolved against it.
//!
//! The operator owns gridlet.toml and the host's environment; a plugin's
//! author owns only the plugin's files. So config values (with `${VAR}`
//! expansion), outbound hosts, private networks and caps on limits are
//! granted in gridlet.toml (`[plugins.<name>]`, `[plugin_limits]`,
//! `allow_private_networks`), and the manifest only asks. Asking for more
//! than was granted never widens the grant: hosts and limits beyond it load
//! clamped to it, with a warning in the plugin's status and the log; a config
//! key the manifest declares `required` that the operator did not set refuses
//! the version (the plugin said it cannot work without it, as Spin refuses
//! an app whose required variable has no value).

use super::manifest::{ConfigKey, Manifest};
use crate::runtime::{
    AllowList, ConfigValues, Grants, Limits, NetworkPolicy, OutboundGrant, RuntimeSettings,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The most a plugin's limits may be, whatever its manifest asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitCaps {
    /// Linear memory, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock time per delivery.
    pub deadline: Duration,
    /// Fuel per delivery; `None` sets no cap (a manifest may still set one).
    pub fuel: Option<u64>,
    /// Deliveries at once.
    pub max_concurrency: u32,
    /// Deliveries per reused instance.
    pub reuse_instance: u32,
    /// Key-value entries the plugin may keep (its quota; the manifest
    /// cannot ask for more).
    pub kv_keys: u64,
    /// Bytes of key-value state the plugin may keep.
    pub kv_bytes: u64,
    /// Key-value bytes the plugin may write per second (0: no pace).
    pub kv_write_bytes_per_second: u64,
    /// Key-value bytes the plugin may read per second (0: no pace).
    pub kv_read_bytes_per_second: u64,
}

impl Default for LimitCaps {
    /// 256 MiB, 60 s, no fuel cap, 32 at once, instances reused up to 1,000
    /// times; key-value quotas of 10,000 keys and 64 MiB, written at up to
    /// 4 MiB/s and read at up to 16 MiB/s.
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            memory_bytes: 256 * 1024 * 1024,
            deadline: Duration::from_secs(60),
            fuel: None,
            max_concurrency: 32,
            reuse_instance: 1_000,
            kv_keys: limits.kv_keys,
            kv_bytes: limits.kv_bytes,
            kv_write_bytes_per_second: limits.kv_write_bytes_per_second,
            kv_read_bytes_per_second: limits.kv_read_bytes_per_second,
        }
    }
}

impl LimitCaps {
    /// No caps beyond what the manifest format and `settings` allow: for
    /// `gridlet run`, where the person running it is the operator.
    pub fn unlimited(settings: &RuntimeSettings) -> Self {
        Self {
            memory_bytes: settings.max_memory_bytes,
            deadline: Duration::from_secs(600),
            fuel: None,
            max_concurrency: 1024,
            reuse_instance: 100_000,
            ..Self::default()
        }
    }
}

/// What the operator granted one plugin.
#[derive(Debug, Clone, Default)]
pub struct PluginGrant {
    /// Config values (already expanded from the environment).
    pub config: ConfigValues,
    /// Hosts its requests may be addressed to.
    pub allowed_hosts: AllowList,
    /// Private networks those hosts may resolve to.
    pub networks: NetworkPolicy,
    /// Caps on its limits.
    pub caps: LimitCaps,
}

/// Every plugin's grant: those the operator named, and the default for
/// the rest (no config, no hosts, the host-wide networks and caps).
#[derive(Debug, Clone, Default)]
pub struct OperatorGrants {
    default: PluginGrant,
    named: BTreeMap<String, PluginGrant>,
}

impl OperatorGrants {
    /// Grants with `default` for every plugin not in `named`.
    pub fn new(default: PluginGrant, named: BTreeMap<String, PluginGrant>) -> Self {
        Self { default, named }
    }

    /// What plugin `name` is granted.
    pub fn of(&self, name: &str) -> &PluginGrant {
        self.named.get(name).unwrap_or(&self.default)
    }

    /// The plugins the operator named (declared even before their files
    /// arrive).
    pub fn named(&self) -> impl Iterator<Item = &str> {
        self.named.keys().map(String::as_str)
    }
}

/// A version's effective limits and grants.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Limits within the caps.
    pub limits: Limits,
    /// What it may use.
    pub grants: Grants,
    /// What the manifest asked for and did not get.
    pub warnings: Vec<String>,
}

/// Resolve what plugin `name`'s `manifest` asks for against what the
/// operator `grant`ed. The error names the required config keys the
/// operator did not set.
pub fn resolve(name: &str, manifest: &Manifest, grant: &PluginGrant) -> Result<Resolved, String> {
    let mut warnings = Vec::new();
    let (asked, caps, defaults) = (&manifest.limits, &grant.caps, Limits::default());
    let mut clamp = |key: &str, asked: Option<u64>, default: u64, cap: u64, unit: &str| {
        let want = asked.unwrap_or(default);
        if asked.is_some_and(|a| a > cap) {
            warnings.push(format!(
                "limits.{key}: asked for {want}{unit}, the operator's cap is {cap}{unit}; running with {cap}{unit}"
            ));
        }
        want.min(cap)
    };
    const MIB: u64 = 1024 * 1024;
    let memory_mib = clamp(
        "memory_mib",
        asked.memory_bytes.map(|b| b as u64 / MIB),
        defaults.memory_bytes as u64 / MIB,
        caps.memory_bytes as u64 / MIB,
        " MiB",
    );
    let deadline_ms = clamp(
        "deadline_ms",
        asked.deadline.map(|d| d.as_millis() as u64),
        defaults.deadline.as_millis() as u64,
        caps.deadline.as_millis() as u64,
        " ms",
    );
    let max_concurrency = clamp(
        "max_concurrency",
        asked.max_concurrency.map(u64::from),
        u64::from(defaults.max_concurrency),
        u64::from(caps.max_concurrency),
        "",
    );
    let reuse_instance = clamp(
        "reuse_instance",
        asked.reuse_instance.map(u64::from),
        u64::from(defaults.reuse_instance),
        u64::from(caps.reuse_instance),
        "",
    );
    let fuel = match (asked.fuel, caps.fuel) {
        (asked, None) => asked,
        (None, Some(cap)) => Some(cap),
        (Some(asked), Some(cap)) => Some(clamp("fuel", Some(asked), asked, cap, "")),
    };
    let limits = Limits {
        memory_bytes: (memory_mib * MIB) as usize,
        deadline: Duration::from_millis(deadline_ms),
        fuel,
        max_concurrency: max_concurrency as u32,
        reuse_instance: reuse_instance as u32,
        kv_keys: caps.kv_keys,
        kv_bytes: caps.kv_bytes,
        kv_write_bytes_per_second: caps.kv_write_bytes_per_second,
        kv_read_bytes_per_second: caps.kv_read_bytes_per_second,
    };

    for wanted in &manifest.outbound {
        if !grant.allowed_hosts.covers(wanted) {
            warnings.push(format!(
                "outbound.hosts: `{wanted}` is not granted by the operator \
                 ([plugins.{name}] allowed_hosts); requests to it are denied"
            ));
        }
    }

    // The operator's values, then the manifest's defaults for keys the
    // operator left out; required keys without a value refuse the version.
    let mut config = grant.config.clone();
    let mut missing = Vec::new();
    for (key, declared) in &manifest.config {
        if config.get(key).is_some() {
            continue;
        }
        match declared {
            ConfigKey::Default(value) => config.insert(key.clone(), value.clone()),
            ConfigKey::Required => missing.push(key.as_str()),
            ConfigKey::Optional => {}
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "config key{} {} required by the manifest and not granted: the operator sets it \
             in gridlet.toml [plugins.{name}.config] (or `gridlet run --config KEY=VALUE`)",
            if missing.len() == 1 { "" } else { "s" },
            missing
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Resolved {
        limits,
        grants: Grants {
            outbound: Arc::new(OutboundGrant {
                allowed_hosts: grant.allowed_hosts.clone(),
                networks: grant.networks.clone(),
            }),
            config: Arc::new(config),
        },
        warnings,
    })
}

/// Expand `${NAME}` and `${NAME:-default}` from `env` (the operator's
/// environment). Errors name the variable, never a value.
pub fn expand_env(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "`${` without a closing `}`".to_string())?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err("`${...}` holds something that is not an environment variable name".into());
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
