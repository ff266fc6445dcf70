//! `[plugin_limits]` and `[plugins.<name>]` in gridlet.toml: what the
//! operator grants plugins — config values, hosts, private networks, and
//! caps on what a manifest may ask for.

use crate::plugin::grants::expand_env;
use crate::plugin::manifest::scrub;
use crate::plugin::{LimitCaps, OperatorGrants, PluginGrant};
use crate::runtime::{AllowList, ConfigValues, NetworkPolicy};
use anyhow::bail;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// `[plugin_limits]` and `[plugins.<name>.limits]`: the most a plugin's
/// manifest may ask for.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Linear memory, in MiB (default 256).
    pub memory_mib: Option<u64>,
    /// Wall-clock time per delivery, in ms (default 60000).
    pub deadline_ms: Option<u64>,
    /// Fuel per delivery (default: no cap).
    pub fuel: Option<u64>,
    /// Deliveries at once (default 32).
    pub max_concurrency: Option<u32>,
    /// Deliveries per reused instance (default 1000).
    pub reuse_instance: Option<u32>,
    /// Key-value entries a plugin may keep (default 10000).
    pub kv_keys: Option<u64>,
    /// Key-value state a plugin may keep, in MiB (default 64).
    pub kv_mib: Option<u64>,
    /// Key-value bytes a plugin may write per second, in MiB (default 4;
    /// 0: no pace).
    pub kv_write_mib_per_second: Option<u64>,
    /// Key-value bytes a plugin may read per second, in MiB (default 16;
    /// 0: no pace).
    pub kv_read_mib_per_second: Option<u64>,
}

/// `[plugins.<name>]`: what the operator grants one plugin.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Config values it may read (`${VAR}` and `${VAR:-default}` expanded
    /// from the host's environment).
    pub config: Option<BTreeMap<String, String>>,
    /// Hosts it may call (`${VAR}` expanded; an entry that expands to ""
    /// grants nothing).
    pub allowed_hosts: Option<Vec<String>>,
    /// Private networks it may reach, beyond the host-wide ones.
    pub allow_private_networks: Option<Vec<String>>,
    /// Caps on its limits, over `[plugin_limits]`.
    pub limits: Option<LimitsConfig>,
}

/// What the operator grants: `[plugins.<name>]` over the host-wide
/// `allow_private_networks` and `[plugin_limits]`, with `${VAR}` expanded
/// from `env`. Errors name the key and the variable, never a value.
pub fn grants(
    networks: Vec<String>,
    limits: LimitsConfig,
    plugins: BTreeMap<String, PluginConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<OperatorGrants> {
    let networks = NetworkPolicy::parse(&networks)
        .map_err(|e| anyhow::anyhow!("allow_private_networks: {e}"))?;
    let caps = limits.over(LimitCaps::default(), "plugin_limits")?;
    let default = PluginGrant {
        networks: networks.clone(),
        caps,
        ..PluginGrant::default()
    };
    let mut named = BTreeMap::new();
    for (name, plugin) in plugins {
        let at = format!("plugins.{name}");
        crate::plugin::plugin_name(Path::new(&format!("{name}.wasm"))).map_err(|_| {
            anyhow::anyhow!("[{at}]: `{name}` is not a plugin name (a-z, 0-9, `-`, `_`)")
        })?;
        let mut config = ConfigValues::default();
        for (key, value) in plugin.config.unwrap_or_default() {
            let value =
                expand_env(&value, env).map_err(|e| anyhow::anyhow!("{at}.config.{key}: {e}"))?;
            config.insert(key, value);
        }
        let mut hosts = Vec::new();
        for (i, entry) in plugin.allowed_hosts.unwrap_or_default().iter().enumerate() {
            let host = expand_env(entry, env)
                .map_err(|e| anyhow::anyhow!("{at}.allowed_hosts[{i}]: {e}"))?;
            if !host.trim().is_empty() {
                hosts.push(host);
            }
        }
        let allowed_hosts = AllowList::parse(&hosts)
            .map_err(|e| anyhow::anyhow!("{at}.allowed_hosts: {}", scrub(&e)))?;
        let own = NetworkPolicy::parse(&plugin.allow_private_networks.unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("{at}.allow_private_networks: {e}"))?;
        let caps = plugin
            .limits
            .unwrap_or_default()
            .over(caps, &format!("{at}.limits"))?;
        named.insert(
            name,
            PluginGrant {
                config,
                allowed_hosts,
                networks: networks.with(&own),
                caps,
            },
        );
    }
    Ok(OperatorGrants::new(default, named))
}

impl LimitsConfig {
    /// These caps over `base` (each key set here wins).
    fn over(self, base: LimitCaps, at: &str) -> anyhow::Result<LimitCaps> {
        let mut caps = base;
        if let Some(m) = self.memory_mib {
            if !(1..=4096).contains(&m) {
                bail!("{at}.memory_mib: {m} is not between 1 and 4096");
            }
            caps.memory_bytes = (m as usize) * 1024 * 1024;
        }
        if let Some(ms) = self.deadline_ms {
            if !(1..=600_000).contains(&ms) {
                bail!("{at}.deadline_ms: {ms} is not between 1 and 600000");
            }
            caps.deadline = Duration::from_millis(ms);
        }
        if let Some(fuel) = self.fuel {
            if fuel == 0 {
                bail!("{at}.fuel: must be above 0");
            }
            caps.fuel = Some(fuel);
        }
        if let Some(n) = self.max_concurrency {
            if !(1..=1024).contains(&n) {
                bail!("{at}.max_concurrency: {n} is not between 1 and 1024");
            }
            caps.max_concurrency = n;
        }
        if let Some(n) = self.reuse_instance {
            if n > 100_000 {
                bail!("{at}.reuse_instance: {n} is not between 0 and 100000");
            }
            caps.reuse_instance = n;
        }
        if let Some(n) = self.kv_keys {
            caps.kv_keys = n;
        }
        if let Some(m) = self.kv_mib {
            caps.kv_bytes = m.saturating_mul(1024 * 1024);
        }
        if let Some(m) = self.kv_write_mib_per_second {
            caps.kv_write_bytes_per_second = m.saturating_mul(1024 * 1024);
        }
        if let Some(m) = self.kv_read_mib_per_second {
            caps.kv_read_bytes_per_second = m.saturating_mul(1024 * 1024);
        }
        Ok(caps)
    }
}

#[cfg(test)]
mod tests {
    use super::LimitsConfig;
    use crate::plugin::LimitCaps;

    #[test]
    fn key_value_paces_are_set_in_mib_per_second() {
        let limits: LimitsConfig =
            toml::from_str("kv_read_mib_per_second = 2\nkv_write_mib_per_second = 0\n")
                .expect("parses");
        let caps = limits
            .over(LimitCaps::default(), "plugin_limits")
            .expect("caps");
        assert_eq!(caps.kv_read_bytes_per_second, 2 * 1024 * 1024);
        assert_eq!(caps.kv_write_bytes_per_second, 0, "0: unpaced");
        let defaults = LimitCaps::default();
        assert_eq!(defaults.kv_read_bytes_per_second, 16 * 1024 * 1024);
        assert_eq!(defaults.kv_write_bytes_per_second, 4 * 1024 * 1024);
    }
}
