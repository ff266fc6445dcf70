//! `gridlet.toml`: the host's configuration. Every key can also be set by an
//! environment variable `GRIDLET_<KEY>` and a flag `--<key>` (flag over
//! environment over file over default); the CLI does that layering.

use super::ServeSettings;
pub use super::plugin_config::{LimitsConfig, PluginConfig, grants};
use crate::ingest::auth::fetch_jwks;
use crate::ingest::{Auth, EntraAuth, SecretAuth};
use crate::plugin::manifest::locate;
use crate::plugin::{ChildCompiler, Compiler};
use anyhow::{Context, bail};
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration file, as written. Every key is optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address to listen on (default `0.0.0.0:8080`).
    pub listen: Option<String>,
    /// Path Event Grid POSTs to (default `/api/events`).
    pub webhook_path: Option<String>,
    /// Folder of `<name>.wasm` + `<name>.toml` plugins (default `plugins`).
    pub plugins_dir: Option<PathBuf>,
    /// Folder for gridlet's own state (default `state`).
    pub state_dir: Option<PathBuf>,
    /// The shared secret Event Grid sends (query `code` or a header).
    pub secret: Option<String>,
    /// A second accepted secret, for rotation.
    pub secondary_secret: Option<String>,
    /// Query parameter carrying the secret (default `code`).
    pub secret_query_param: Option<String>,
    /// Header carrying the secret (default `x-gridlet-secret`).
    pub secret_header: Option<String>,
    /// Workspace resource ids events may come from (default: any).
    pub allowed_topics: Option<Vec<String>>,
    /// Largest request body in bytes (default 4194304).
    pub body_limit_bytes: Option<usize>,
    /// Origins granted in the CloudEvents handshake (default `eventgrid.azure.net`).
    pub allowed_origins: Option<Vec<String>>,
    /// Requests per minute granted in the handshake (default unlimited, `*`).
    pub allowed_rate: Option<u32>,
    /// Deliveries waiting at most before batches are refused with 503 (default 100000).
    pub queue_capacity: Option<usize>,
    /// Deliveries claimed at once across plugins (default 1024).
    pub max_in_flight: Option<usize>,
    /// fsync every journal commit (default true).
    pub journal_fsync: Option<bool>,
    /// Waits before retries in ms, the last repeating (default Event Grid's
    /// 10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h).
    pub retry_delays_ms: Option<Vec<u64>>,
    /// On shutdown, how long running deliveries may take, in ms (default 30000).
    pub shutdown_grace_ms: Option<u64>,
    /// Bearer token for the admin API under `/admin` (default: none, API off).
    pub admin_token: Option<String>,
    /// Serve Prometheus metrics at `/metrics` (default true).
    pub metrics: Option<bool>,
    /// On shutdown, keep accepting this long with `/readyz` at 503, in ms (default 0).
    pub shutdown_delay_ms: Option<u64>,
    /// Where compiled plugins are cached (default `<state_dir>/compiled`).
    pub compile_cache_dir: Option<PathBuf>,
    /// Reload plugins when their files change (default true).
    pub watch_plugins: Option<bool>,
    /// Quiet time after a plugin's files change before it is reloaded, in ms (default 20).
    pub reload_debounce_ms: Option<u64>,
    /// Serve without any auth on a non-loopback address (default false:
    /// refuse to start that way).
    pub insecure_no_auth: Option<bool>,
    /// Serve the webhook (default true; false for a host that only pulls).
    pub webhook: Option<bool>,
    /// A separate address for the admin API and `/metrics` (default: the
    /// main listener).
    pub admin_listen: Option<String>,
    /// Most connections open at once per listener (default 1024).
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers, in ms (default 10000).
    pub header_timeout_ms: Option<u64>,
    /// Time a client has to send a request's body, in ms (default 30000).
    pub body_timeout_ms: Option<u64>,
    /// Largest plugin `.wasm` read, in bytes (default 134217728).
    pub max_plugin_bytes: Option<u64>,
    /// Private networks every plugin may reach (CIDRs; default none).
    pub allow_private_networks: Option<Vec<String>>,
    /// Free space the state folder's disk must keep for `/readyz`, in MiB
    /// (default 64).
    pub min_free_disk_mib: Option<u64>,
    /// Days dead letters are kept (default 30).
    pub dead_letter_retention_days: Option<u64>,
    /// Compile plugins in the serving process instead of a child (default
    /// false).
    pub compile_in_process: Option<bool>,
    /// Most memory one plugin's compile may use, in MiB (default 2048).
    pub compile_max_memory_mib: Option<u64>,
    /// Most time one plugin's compile may take, in ms (default 300000).
    pub compile_timeout_ms: Option<u64>,
    /// Threads plugin code runs on (default: one per core but one, at
    /// least one).
    pub guest_threads: Option<usize>,
    /// Caps on every plugin's limits (`[plugins.<name>.limits]` overrides).
    pub plugin_limits: Option<LimitsConfig>,
    /// What the operator grants each plugin, by name.
    pub plugins: Option<BTreeMap<String, PluginConfig>>,
    /// Microsoft Entra ID bearer-token validation.
    pub entra: Option<EntraConfig>,
    /// Event Grid namespace subscriptions to pull from (`[[pull]]`).
    pub pull: Option<Vec<super::pull_config::PullConfig>>,
    /// Run on NATS JetStream with other hosts (`[cluster]`; default: the
    /// embedded SQLite journal).
    pub cluster: Option<super::cluster_config::ClusterConfig>,
}

/// `[entra]`: validate the bearer token Event Grid sends when the
/// subscription uses Microsoft Entra ID.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EntraConfig {
    /// Expected `iss`, e.g. `https://login.microsoftonline.com/<tenant>/v2.0`.
    pub issuer: Option<String>,
    /// Expected `aud`: the webhook app's id or id URI.
    pub audience: Option<String>,
    /// Signing keys from a JWKS file...
    pub jwks_file: Option<PathBuf>,
    /// ...or a JWKS URL, e.g. `https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys`
    /// (fetched at start, every hour, and when a token names an unknown key).
    pub jwks_url: Option<String>,
    /// App roles the token must carry, every one (default: none required).
    pub required_roles: Option<Vec<String>>,
}

impl ConfigFile {
    /// Read a configuration file; errors name the file, the line and why.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
        // The file holds secrets: errors name the line and key, never a value.
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), locate(&text, &e)))
    }
}

impl ConfigFile {
    /// This layer with `over` on top: every key `over` sets wins.
    pub fn merge(self, over: ConfigFile) -> ConfigFile {
        let entra = match (self.entra, over.entra) {
            (Some(base), Some(top)) => Some(EntraConfig {
                issuer: top.issuer.or(base.issuer),
                audience: top.audience.or(base.audience),
                jwks_file: top.jwks_file.or(base.jwks_file),
                jwks_url: top.jwks_url.or(base.jwks_url),
                required_roles: top.required_roles.or(base.required_roles),
            }),
            (base, top) => top.or(base),
        };
        ConfigFile {
            listen: over.listen.or(self.listen),
            webhook_path: over.webhook_path.or(self.webhook_path),
            plugins_dir: over.plugins_dir.or(self.plugins_dir),
            state_dir: over.state_dir.or(self.state_dir),
            secret: over.secret.or(self.secret),
            secondary_secret: over.secondary_secret.or(self.secondary_secret),
            secret_query_param: over.secret_query_param.or(self.secret_query_param),
            secret_header: over.secret_header.or(self.secret_header),
            allowed_topics: over.allowed_topics.or(self.allowed_topics),
            body_limit_bytes: over.body_limit_bytes.or(self.body_limit_bytes),
            allowed_origins: over.allowed_origins.or(self.allowed_origins),
            allowed_rate: over.allowed_rate.or(self.allowed_rate),
            queue_capacity: over.queue_capacity.or(self.queue_capacity),
            max_in_flight: over.max_in_flight.or(self.max_in_flight),
            journal_fsync: over.journal_fsync.or(self.journal_fsync),
            retry_delays_ms: over.retry_delays_ms.or(self.retry_delays_ms),
            shutdown_grace_ms: over.shutdown_grace_ms.or(self.shutdown_grace_ms),
            admin_token: over.admin_token.or(self.admin_token),
            metrics: over.metrics.or(self.metrics),
            shutdown_delay_ms: over.shutdown_delay_ms.or(self.shutdown_delay_ms),
            compile_cache_dir: over.compile_cache_dir.or(self.compile_cache_dir),
            watch_plugins: over.watch_plugins.or(self.watch_plugins),
            reload_debounce_ms: over.reload_debounce_ms.or(self.reload_debounce_ms),
            insecure_no_auth: over.insecure_no_auth.or(self.insecure_no_auth),
            webhook: over.webhook.or(self.webhook),
            admin_listen: over.admin_listen.or(self.admin_listen),
            max_connections: over.max_connections.or(self.max_connections),
            header_timeout_ms: over.header_timeout_ms.or(self.header_timeout_ms),
            body_timeout_ms: over.body_timeout_ms.or(self.body_timeout_ms),
            max_plugin_bytes: over.max_plugin_bytes.or(self.max_plugin_bytes),
            allow_private_networks: over.allow_private_networks.or(self.allow_private_networks),
            min_free_disk_mib: over.min_free_disk_mib.or(self.min_free_disk_mib),
            dead_letter_retention_days: over
                .dead_letter_retention_days
                .or(self.dead_letter_retention_days),
            compile_in_process: over.compile_in_process.or(self.compile_in_process),
            compile_max_memory_mib: over.compile_max_memory_mib.or(self.compile_max_memory_mib),
            compile_timeout_ms: over.compile_timeout_ms.or(self.compile_timeout_ms),
            guest_threads: over.guest_threads.or(self.guest_threads),
            plugin_limits: over.plugin_limits.or(self.plugin_limits),
            plugins: over.plugins.or(self.plugins),
            entra,
            pull: over.pull.or(self.pull),
            cluster: match (self.cluster, over.cluster) {
                (Some(base), Some(top)) => Some(base.merge(top)),
                (base, top) => top.or(base),
            },
        }
    }

    /// The settings these keys give, defaults for the rest. Fetches the
    /// Entra JWKS when a URL is configured.
    pub async fn resolve(self) -> anyhow::Result<ServeSettings> {
        let mut s = ServeSettings::default();
        if let Some(listen) = self.listen {
            s.listen = listen.parse().with_context(|| {
                format!("listen: `{listen}` is not an address like 0.0.0.0:8080")
            })?;
        }
        if let Some(path) = self.webhook_path {
            if !path.starts_with('/') {
                bail!("webhook_path: `{path}` must start with /");
            }
            s.ingest.webhook_path = path;
        }
        s.plugins_dir = self.plugins_dir.unwrap_or(s.plugins_dir);
        s.state_dir = self.state_dir.unwrap_or(s.state_dir);
        s.compile_cache_dir = self.compile_cache_dir;
        s.metrics = self.metrics.unwrap_or(true);
        if let Some(ms) = self.shutdown_delay_ms {
            s.shutdown_delay = Duration::from_millis(ms);
        }
        if let Some(topics) = self.allowed_topics {
            s.ingest.allowed_topics = topics
                .into_iter()
                .filter(|t| !t.trim().is_empty())
                .collect();
        }
        if let Some(limit) = self.body_limit_bytes {
            s.ingest.body_limit = limit;
        }
        if let Some(origins) = self.allowed_origins {
            s.ingest.allowed_origins = origins;
        }
        s.ingest.allowed_rate = self.allowed_rate;
        if let Some(capacity) = self.queue_capacity {
            s.dispatch.queue_capacity = capacity;
        }
        if let Some(n) = self.max_in_flight {
            s.dispatch.max_in_flight = n;
        }
        if let Some(fsync) = self.journal_fsync {
            s.journal.durable = fsync;
        }
        if let Some(delays) = self.retry_delays_ms {
            if delays.is_empty() {
                bail!("retry_delays_ms: give at least one delay");
            }
            s.dispatch.retry_delays = delays.into_iter().map(Duration::from_millis).collect();
        }
        s.admin_token = self.admin_token.filter(|t| !t.is_empty());
        if let Some(ms) = self.shutdown_grace_ms {
            s.dispatch.shutdown_grace = Duration::from_millis(ms);
        }
        if self.watch_plugins == Some(false) {
            s.watch = None;
        } else if let (Some(ms), Some(watch)) = (self.reload_debounce_ms, s.watch.as_mut()) {
            watch.debounce = Duration::from_millis(ms);
        }
        let secrets: Vec<String> = [self.secret, self.secondary_secret]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        let secret = (!secrets.is_empty()).then(|| {
            SecretAuth::new(
                &secrets,
                self.secret_query_param.as_deref().unwrap_or("code"),
                self.secret_header.as_deref().unwrap_or("x-gridlet-secret"),
            )
        });
        let entra = match self.entra {
            Some(entra) => Some(entra.build().await?),
            None => None,
        };
        s.ingest.auth = Auth { secret, entra };
        let env = |name: &str| std::env::var(name).ok();
        let mut pull = self.pull.unwrap_or_default();
        pull.extend(super::pull_config::PullConfig::from_env(&env));
        s.pull = pull
            .into_iter()
            .enumerate()
            .map(|(i, p)| p.build(i, &env))
            .collect::<anyhow::Result<_>>()?;
        s.insecure_no_auth = self.insecure_no_auth.unwrap_or(false);
        s.webhook = self.webhook.unwrap_or(true);
        if let Some(admin) = self.admin_listen.filter(|a| !a.is_empty()) {
            s.admin_listen = Some(admin.parse().with_context(|| {
                format!("admin_listen: `{admin}` is not an address like 127.0.0.1:9090")
            })?);
        }
        if let Some(n) = self.max_connections {
            if n == 0 {
                bail!("max_connections: must be at least 1");
            }
            s.limits.max_connections = n;
        }
        if let Some(ms) = self.header_timeout_ms {
            s.limits.header_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(ms) = self.body_timeout_ms {
            s.ingest.body_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(n) = self.max_plugin_bytes {
            s.max_plugin_bytes = n;
        }
        if let Some(mib) = self.min_free_disk_mib {
            s.min_free_disk_bytes = mib.saturating_mul(1024 * 1024);
        }
        if let Some(days) = self.dead_letter_retention_days {
            if days == 0 {
                bail!("dead_letter_retention_days: keep them at least a day");
            }
            s.journal.dead_letter_retention = Duration::from_secs(days.saturating_mul(86_400));
        }
        if let Some(cluster) = self.cluster {
            s.cluster = Some(cluster.build(s.journal.dead_letter_retention)?);
        }
        // Compile in a child `gridlet` (this very executable) unless told
        // otherwise, or unless this process is not gridlet (an embedder).
        s.compiler = match std::env::current_exe() {
            Ok(exe) if self.compile_in_process != Some(true) && is_gridlet(&exe) => {
                let mut child = ChildCompiler::new(exe);
                if let Some(mib) = self.compile_max_memory_mib {
                    child.max_memory_bytes = mib.max(1).saturating_mul(1024 * 1024);
                }
                if let Some(ms) = self.compile_timeout_ms {
                    child.timeout = Duration::from_millis(ms.max(1));
                }
                Compiler::Child(child)
            }
            _ => Compiler::InProcess,
        };
        if let Some(threads) = self.guest_threads {
            if threads == 0 {
                bail!("guest_threads: plugins need at least one thread");
            }
            s.runtime.guest_threads = threads;
        }
        s.grants = grants(
            self.allow_private_networks.unwrap_or_default(),
            self.plugin_limits.unwrap_or_default(),
            self.plugins.unwrap_or_default(),
            &|name| std::env::var(name).ok(),
        )?;
        Ok(s)
    }
}

/// Is `exe` the `gridlet` binary (which has `compile-plugin`)?
fn is_gridlet(exe: &Path) -> bool {
    exe.file_stem().is_some_and(|s| s == "gridlet")
}

impl EntraConfig {
    /// The Entra ID check: issuer, audience and one key source are required.
    async fn build(self) -> anyhow::Result<EntraAuth> {
        let issuer = self
            .issuer
            .context("entra.issuer is required with [entra]")?;
        let audience = self
            .audience
            .context("entra.audience is required with [entra]")?;
        let keys = match (&self.jwks_file, &self.jwks_url) {
            (Some(file), None) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("entra.jwks_file {}", file.display()))?;
                serde_json::from_str::<JwkSet>(&text)
                    .with_context(|| format!("entra.jwks_file {}: not a JWKS", file.display()))?
            }
            (None, Some(url)) => fetch_jwks(url)
                .await
                .map_err(|e| anyhow::anyhow!("entra.jwks_url {e}"))?,
            _ => bail!("[entra] needs exactly one of jwks_file and jwks_url"),
        };
        let mut auth = EntraAuth::new(&issuer, &audience, keys)
            .with_required_roles(self.required_roles.unwrap_or_default());
        if let Some(url) = &self.jwks_url {
            auth = auth.with_key_url(url, Some(std::time::Instant::now()));
            // Entra rotates its signing keys: refresh hourly, keep the old set on failure.
            let refreshed = auth.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    if let Err(e) = refreshed.refresh().await {
                        tracing::warn!("entra JWKS refresh failed, keeping the old keys: {e}");
                    }
                }
            });
        }
        Ok(auth)
    }
}
