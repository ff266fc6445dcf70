//! `[cluster]` in gridlet.toml: run on NATS JetStream instead of the
//! embedded journal, sharing the work with every other host pointed at the
//! same servers. Without the section (the default) the journal is SQLite in
//! `state_dir`.

use crate::journal::ClusterSettings;
use anyhow::bail;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[cluster]`, as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:4222`, `tls://…`); any one is enough
    /// to find the rest.
    pub urls: Option<Vec<String>>,
    /// Replicas of every stream and bucket: 1 or 3 (default 3; 1 for a
    /// single server).
    pub replicas: Option<usize>,
    /// A NATS credentials file (JWT and nkey seed).
    pub credentials_file: Option<PathBuf>,
    /// PEM CA certificates to trust; TLS is required when set.
    pub tls_ca_file: Option<PathBuf>,
    /// How long an event's (topic, id) is remembered as seen, in hours
    /// (default 24).
    pub dedup_window_hours: Option<u64>,
    /// How long a host may hold a delivery without word before another
    /// host takes it, in ms (default 30000; hosts holding one longer say
    /// they are still at it).
    pub ack_wait_ms: Option<u64>,
    /// How old a delivery for a plugin no host here knows must be before it
    /// is dead-lettered as `PluginNotFound`, in ms (default 600000).
    pub unknown_plugin_grace_ms: Option<u64>,
}

impl ClusterConfig {
    /// This layer with `over`'s keys on top.
    pub fn merge(self, over: ClusterConfig) -> ClusterConfig {
        ClusterConfig {
            urls: over.urls.or(self.urls),
            replicas: over.replicas.or(self.replicas),
            credentials_file: over.credentials_file.or(self.credentials_file),
            tls_ca_file: over.tls_ca_file.or(self.tls_ca_file),
            dedup_window_hours: over.dedup_window_hours.or(self.dedup_window_hours),
            ack_wait_ms: over.ack_wait_ms.or(self.ack_wait_ms),
            unknown_plugin_grace_ms: over
                .unknown_plugin_grace_ms
                .or(self.unknown_plugin_grace_ms),
        }
    }

    /// Validate; `dead_letter_retention` comes from the top-level key.
    pub fn build(self, dead_letter_retention: Duration) -> anyhow::Result<ClusterSettings> {
        let urls: Vec<String> = self
            .urls
            .unwrap_or_default()
            .into_iter()
            .filter(|u| !u.trim().is_empty())
            .collect();
        if urls.is_empty() {
            bail!("cluster.urls: give at least one NATS server URL (nats://host:4222)");
        }
        let replicas = self.replicas.unwrap_or(3);
        if !(1..=5).contains(&replicas) {
            bail!("cluster.replicas: {replicas} is not 1 to 5 (3 in production, 1 for one server)");
        }
        let ack_wait = Duration::from_millis(self.ack_wait_ms.unwrap_or(30_000));
        if ack_wait < Duration::from_secs(1) {
            bail!("cluster.ack_wait_ms: at least 1000");
        }
        let defaults = ClusterSettings::default();
        Ok(ClusterSettings {
            urls,
            replicas,
            credentials_file: self.credentials_file,
            tls_ca_file: self.tls_ca_file,
            dedup_window: self.dedup_window_hours.map_or(defaults.dedup_window, |h| {
                Duration::from_secs(h.max(1) * 3600)
            }),
            ack_wait,
            dead_letter_retention,
            unknown_plugin_grace: self
                .unknown_plugin_grace_ms
                .map_or(defaults.unknown_plugin_grace, Duration::from_millis),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(c: ClusterConfig) -> String {
        match c.build(Duration::from_secs(86_400)) {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        let urls = Some(vec!["nats://127.0.0.1:4222".to_string()]);
        assert!(refused(ClusterConfig::default()).starts_with("cluster.urls:"));
        assert!(
            refused(ClusterConfig {
                urls: Some(vec![" ".into()]),
                ..Default::default()
            })
            .starts_with("cluster.urls:")
        );
        for replicas in [0, 6] {
            assert!(
                refused(ClusterConfig {
                    urls: urls.clone(),
                    replicas: Some(replicas),
                    ..Default::default()
                })
                .starts_with("cluster.replicas:")
            );
        }
        assert!(
            refused(ClusterConfig {
                urls: urls.clone(),
                ack_wait_ms: Some(10),
                ..Default::default()
            })
            .starts_with("cluster.ack_wait_ms:")
        );
        let ok = ClusterConfig {
            urls,
            ..Default::default()
        }
        .build(Duration::from_secs(86_400))
        .expect("defaults");
        assert_eq!((ok.replicas, ok.ack_wait), (3, Duration::from_secs(30)));
    }
}
