//! Connecting to the cluster: every stream and bucket the journal uses,
//! created when missing (each host asks; the first creates them), and the
//! task that keeps the count of outstanding deliveries and the consumers'
//! lag current.

use super::{
    CALL_TIMEOUT, ClusterSettings, DEAD, DELIVERIES, HEALTH, Inner, PluginStore, REPLAYS, SEEN,
    STARTUP_WAIT, slots,
};
use crate::journal::JournalError;
use async_nats::jetstream::{self, consumer, kv, stream};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

impl Inner {
    /// Connect, and open (or create) every stream and bucket, waiting a
    /// while for a cluster that is still starting.
    pub(super) async fn connect(settings: ClusterSettings) -> Result<Self, JournalError> {
        let mut options = async_nats::ConnectOptions::new()
            .name("gridlet")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5));
        if let Some(creds) = &settings.credentials_file {
            options = options
                .credentials_file(creds)
                .await
                .map_err(|e| JournalError(format!("credentials_file {}: {e}", creds.display())))?;
        }
        if let Some(ca) = &settings.tls_ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        let urls: Vec<async_nats::ServerAddr> = settings
            .urls
            .iter()
            .enumerate()
            .map(|(i, u)| {
                // By position, never the text: a URL may carry a password.
                u.parse().map_err(|e| {
                    JournalError(format!(
                        "[cluster] urls: entry {}: not a NATS URL ({e})",
                        i + 1
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let client = tokio::time::timeout(CALL_TIMEOUT, options.connect(urls))
            .await
            .map_err(|_| JournalError("cannot reach NATS: no server answered".into()))?
            .map_err(|e| JournalError(format!("cannot connect to NATS: {e}")))?;
        let js = jetstream::new(client);
        // A cluster starting beside this host may still be electing its
        // leaders: wait for it a while rather than exit.
        let started = std::time::Instant::now();
        let (deliveries, dead, slots, seen, replays, plugins) = loop {
            match Self::streams(&js, &settings).await {
                Ok(streams) => break streams,
                Err(e) if started.elapsed() < STARTUP_WAIT => {
                    tracing::warn!("JetStream not ready yet ({e}); trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        Ok(Self {
            js,
            deliveries,
            dead,
            seen,
            replays,
            plugins,
            settings,
            consumers: Default::default(),
            slots,
            slot_consumers: Default::default(),
            claims: Default::default(),
            outstanding: AtomicI64::new(0),
        })
    }

    /// Every stream and bucket, created when missing.
    async fn streams(
        js: &jetstream::Context,
        settings: &ClusterSettings,
    ) -> Result<Streams, JournalError> {
        let r = settings.replicas;
        let deliveries = ensure_stream(
            js,
            stream::Config {
                name: DELIVERIES.into(),
                subjects: vec!["gridlet.delivery.>".into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: r,
                allow_direct: true,
                ..Default::default()
            },
        )
        .await?;
        let dead = ensure_stream(
            js,
            stream::Config {
                name: DEAD.into(),
                subjects: vec!["gridlet.dead.>".into()],
                storage: stream::StorageType::File,
                num_replicas: r,
                max_age: settings.dead_letter_retention,
                allow_direct: true,
                ..Default::default()
            },
        )
        .await?;
        ensure_stream(
            js,
            stream::Config {
                name: HEALTH.into(),
                subjects: vec!["gridlet.health".into()],
                storage: stream::StorageType::File,
                num_replicas: r,
                max_messages: 1,
                ..Default::default()
            },
        )
        .await?;
        let slots = ensure_stream(js, slots::stream(r)).await?;
        let seen = ensure_bucket(js, SEEN, settings.dedup_window, r).await?;
        let replays = ensure_bucket(js, REPLAYS, settings.dead_letter_retention, r).await?;
        let plugins = PluginStore::open(js, r).await?;
        Ok((deliveries, dead, slots, seen, replays, plugins))
    }
}

/// The deliveries, dead-letter and slots streams, the dedup and replay
/// buckets, the plugin bucket.
type Streams = (
    stream::Stream,
    stream::Stream,
    stream::Stream,
    kv::Store,
    kv::Store,
    PluginStore,
);

/// The stream, created when missing (every host asks; the first creates it).
async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, JournalError> {
    let name = config.name.clone();
    js.get_or_create_stream(config)
        .await
        .map_err(|e| JournalError(format!("stream {name}: {e}")))
}

/// The key-value bucket, created when missing.
async fn ensure_bucket(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, JournalError> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    let created = js
        .create_key_value(kv::Config {
            bucket: bucket.into(),
            history: 1,
            max_age,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        // Another host created it first.
        Err(e) => js
            .get_key_value(bucket)
            .await
            .map_err(|_| JournalError(format!("bucket {bucket}: {e}"))),
    }
}

/// Keep [`Inner::outstanding`] at the cluster's count, and each bound
/// plugin's consumer lag in the metrics, once a second, for as long as the
/// journal lives.
pub(super) async fn refresh_outstanding(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else { return };
        if let Ok(Ok(info)) = tokio::time::timeout(CALL_TIMEOUT, inner.deliveries.get_info()).await
        {
            inner
                .outstanding
                .store(info.state.messages as i64, Ordering::SeqCst);
        }
        let consumers: Vec<(String, consumer::PullConsumer)> = inner
            .consumers
            .lock()
            .await
            .iter()
            .map(|(p, c)| (p.clone(), c.clone()))
            .collect();
        for (plugin, mut consumer) in consumers {
            if let Ok(Ok(info)) = tokio::time::timeout(CALL_TIMEOUT, consumer.info()).await {
                let label = [("plugin", plugin)];
                metrics::gauge!("gridlet_cluster_pending", &label).set(info.num_pending as f64);
                metrics::gauge!("gridlet_cluster_ack_pending", &label)
                    .set(info.num_ack_pending as f64);
                metrics::gauge!("gridlet_cluster_redelivered", &label)
                    .set(info.num_redelivered as f64);
            }
        }
        drop(inner);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
