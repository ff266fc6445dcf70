//! Plugin state in JetStream key-value buckets, shared by every host of a
//! cluster: one bucket per plugin (`gridlet-kv-<plugin>`), a `wasi:keyvalue`
//! bucket and key as one bucket key (both hex-encoded, so any text is a
//! valid key and keys list in byte order). Counters are incremented by
//! compare-and-set on the entry's revision, so increments from two hosts
//! are never lost.

use super::{KeyValue, KvError, KvQuota, decode_counter};
use async_nats::jetstream::{self, kv, stream};
use futures_util::TryStreamExt;
use std::collections::HashMap;
use std::time::Duration;

/// How many times an increment retries when another writer got there
/// first, before it reports the contention.
const MAX_CAS_TRIES: usize = 1000;

/// Key-value on JetStream.
pub struct JetStreamKeyValue {
    js: jetstream::Context,
    replicas: usize,
    buckets: tokio::sync::Mutex<HashMap<String, kv::Store>>,
}

fn backend(e: impl std::fmt::Display) -> KvError {
    KvError::Backend(e.to_string())
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The bucket key of `bucket`'s `key`.
fn entry_key(bucket: &str, key: &str) -> String {
    format!("b{}.k{}", hex(bucket), hex(key))
}

impl JetStreamKeyValue {
    /// Over the cluster's JetStream, buckets kept with `replicas`.
    pub fn new(js: jetstream::Context, replicas: usize) -> Self {
        Self {
            js,
            replicas,
            buckets: Default::default(),
        }
    }

    /// `namespace`'s bucket, created when missing.
    async fn store(&self, namespace: &str) -> Result<kv::Store, KvError> {
        let mut buckets = self.buckets.lock().await;
        if let Some(s) = buckets.get(namespace) {
            return Ok(s.clone());
        }
        let name = format!("gridlet-kv-{namespace}");
        let store = match self.js.get_key_value(&name).await {
            Ok(s) => s,
            Err(_) => match self
                .js
                .create_key_value(kv::Config {
                    bucket: name.clone(),
                    history: 1,
                    num_replicas: self.replicas,
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
            {
                Ok(s) => s,
                // Another host created it first.
                Err(e) => self.js.get_key_value(&name).await.map_err(|_| backend(e))?,
            },
        };
        buckets.insert(namespace.to_string(), store.clone());
        Ok(store)
    }

    /// Refuse a new entry of `bytes` when the plugin is at its quota: the
    /// bucket's stream holds one message per live key (deletes purge).
    async fn check_quota(
        &self,
        store: &kv::Store,
        key: &str,
        bytes: usize,
        quota: KvQuota,
    ) -> Result<(), KvError> {
        let info = store.stream.get_info().await.map_err(backend)?;
        let exists = store
            .entry(key)
            .await
            .map_err(backend)?
            .is_some_and(|e| e.operation == kv::Operation::Put);
        if !exists && info.state.messages >= quota.max_keys {
            return Err(KvError::Limit(format!(
                "key-value quota: {} keys at most",
                quota.max_keys
            )));
        }
        if info.state.bytes + bytes as u64 > quota.max_bytes {
            return Err(KvError::Limit(format!(
                "key-value quota: {} bytes at most",
                quota.max_bytes
            )));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl KeyValue for JetStreamKeyValue {
    async fn get(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, KvError> {
        let store = self.store(namespace).await?;
        let value = store.get(entry_key(bucket, key)).await.map_err(backend)?;
        Ok(value.map(|v| v.to_vec()))
    }

    async fn set(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
        quota: KvQuota,
    ) -> Result<(), KvError> {
        let store = self.store(namespace).await?;
        let k = entry_key(bucket, key);
        self.check_quota(&store, &k, k.len() + value.len(), quota)
            .await?;
        store.put(k, value.into()).await.map_err(backend)?;
        Ok(())
    }

    async fn delete(&self, namespace: &str, bucket: &str, key: &str) -> Result<(), KvError> {
        let store = self.store(namespace).await?;
        // Purged from the stream, not marked deleted: a deleted key holds
        // nothing against the quota.
        let subject = format!("{}{}", store.prefix, entry_key(bucket, key));
        store
            .stream
            .purge()
            .filter(subject)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn keys(
        &self,
        namespace: &str,
        bucket: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<String>, KvError> {
        let store = self.store(namespace).await?;
        let prefix = format!("b{}.k", hex(bucket));
        let mut keys: Vec<String> = match store.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(backend)?,
            Err(e) => return Err(backend(e)),
        };
        keys.sort();
        Ok(keys
            .iter()
            .filter_map(|k| unhex(k.strip_prefix(&prefix)?))
            .filter(|k| after.as_ref().is_none_or(|a| k > a))
            .take(limit)
            .collect())
    }

    async fn increment(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        delta: u64,
        quota: KvQuota,
    ) -> Result<u64, KvError> {
        let store = self.store(namespace).await?;
        let k = entry_key(bucket, key);
        for _ in 0..MAX_CAS_TRIES {
            let entry = store.entry(&k).await.map_err(backend)?;
            let live = entry.as_ref().filter(|e| e.operation == kv::Operation::Put);
            let now = match live {
                Some(e) => decode_counter(key, &e.value)?,
                None => 0,
            };
            let next = now.wrapping_add(delta);
            let bytes = bytes::Bytes::copy_from_slice(&next.to_le_bytes());
            if live.is_none() {
                // A new key (or one deleted): it counts against the quota.
                self.check_quota(&store, &k, k.len() + 8, quota).await?;
            }
            let written = match &entry {
                Some(e) => store.update(&k, bytes, e.revision).await.is_ok(),
                None => store.create(&k, bytes).await.is_ok(),
            };
            if written {
                return Ok(next);
            }
            // Another writer changed it in between: read and try again.
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        Err(KvError::Backend(format!(
            "`{key}` kept changing under {MAX_CAS_TRIES} tries"
        )))
    }
}
