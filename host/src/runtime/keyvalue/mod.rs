//! `wasi:keyvalue`: each plugin gets a namespace of its own (its name), with
//! any number of buckets inside, within a quota of keys and bytes the
//! operator sets, its reads and writes at paces the operator sets ([`KvPaces`]).
//! Backends sit behind [`KeyValue`]: [`JournalKeyValue`]
//! keeps state in the journal (durable, group-committed, for `serve`),
//! [`JetStreamKeyValue`] in JetStream buckets (cluster mode, shared by the hosts),
//! [`MemoryKeyValue`] in process (for `gridlet run`). Every call is async:
//! a plugin waiting for its state never holds a runtime thread.

mod jetstream;
mod journal;
mod memory;
mod pace;

pub use crate::journal::KvQuota;
pub use jetstream::JetStreamKeyValue;
pub use journal::JournalKeyValue;
pub use memory::MemoryKeyValue;
pub use pace::{KvPace, KvPaces};

use super::activity::Activity;
use super::bindings::BucketHandle;
use super::bindings::wasi::keyvalue::{atomics, store};
use super::limits::KV_READ_MIN_BYTES;
use std::sync::Arc;
use wasmtime::component::{HasData, Resource, ResourceTable};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Keys returned per `list-keys` page.
pub const LIST_PAGE: usize = 1000;
/// Cursors one delivery may hold open (a plugin paging through a huge
/// bucket in a loop cannot grow the host's memory without bound).
const MAX_CURSORS: usize = 10_000;

/// A key-value failure, as the plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key or value is over its limit, or the plugin is over its quota.
    #[error("{0}")]
    Limit(String),
    /// A counter holds something that is not a counter.
    #[error("value at `{0}` is not a counter (8-byte little-endian u64)")]
    NotACounter(String),
    /// The backend failed.
    #[error("backend: {0}")]
    Backend(String),
}

/// Where plugin state lives. `namespace` is the plugin's name: the host
/// passes it, the plugin cannot choose it.
#[async_trait::async_trait]
pub trait KeyValue: Send + Sync + 'static {
    /// Read a value.
    async fn get(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, KvError>;
    /// Write a value, within `quota`.
    async fn set(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
        quota: KvQuota,
    ) -> Result<(), KvError>;
    /// Remove a value (no error when absent).
    async fn delete(&self, namespace: &str, bucket: &str, key: &str) -> Result<(), KvError>;
    /// Up to `limit` keys in order, after `after`.
    async fn keys(
        &self,
        namespace: &str,
        bucket: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<String>, KvError>;
    /// Add `delta` to a counter (absent counts as 0), within `quota`, and
    /// return the new value.
    async fn increment(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        delta: u64,
        quota: KvQuota,
    ) -> Result<u64, KvError>;
}

/// Read a counter's stored bytes.
pub fn decode_counter(key: &str, bytes: &[u8]) -> Result<u64, KvError> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| KvError::NotACounter(key.to_string()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// The `wasi:keyvalue` capability's state for one delivery: whose
/// namespace, its quota and write pace, which backend, where changes are
/// recorded, and the cursors of its `list-keys` paging.
pub struct PluginKeyValue {
    namespace: Arc<str>,
    quota: KvQuota,
    pace: Arc<KvPaces>,
    kv: Arc<dyn KeyValue>,
    activity: Arc<Activity>,
    /// Cursor `n` continues after `cursors[n - 1]`.
    cursors: Vec<String>,
}

impl PluginKeyValue {
    /// The capability for plugin `namespace` over `kv`, within `quota`
    /// and `pace` (shared by all the plugin's deliveries).
    pub fn new(
        namespace: Arc<str>,
        quota: KvQuota,
        pace: Arc<KvPaces>,
        kv: Arc<dyn KeyValue>,
        activity: Arc<Activity>,
    ) -> Self {
        Self {
            namespace,
            quota,
            pace,
            kv,
            activity,
            cursors: Vec::new(),
        }
    }

    /// Count a read of `bytes` against the read pace (at least
    /// [`KV_READ_MIN_BYTES`]), waiting when over it.
    async fn read(&self, bytes: usize) {
        self.pace.read.wait(bytes.max(KV_READ_MIN_BYTES)).await;
    }

    /// Read `key` of bucket `name`, counted against the read pace.
    async fn read_value(&self, name: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let value = self.kv.get(&self.namespace, name, key).await;
        let size = value
            .as_ref()
            .ok()
            .and_then(Option::as_ref)
            .map_or(0, Vec::len);
        self.read(key.len() + size).await;
        value
    }
}

/// The capability's state with the store's resource table (buckets are
/// resources), as `wasmtime-wasi`'s views pair a context with the table.
pub struct KeyValueView<'a> {
    /// The capability's state.
    pub ctx: &'a mut PluginKeyValue,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// Links `wasi:keyvalue` against a [`KeyValueView`] of the store.
pub struct KeyValueCapability;

impl HasData for KeyValueCapability {
    type Data<'a> = KeyValueView<'a>;
}

impl KeyValueView<'_> {
    fn bucket(&self, handle: &Resource<BucketHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(handle)?.name.clone())
    }
}

fn check_key(key: &str) -> Result<(), store::Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(store::Error::Other(format!(
            "key is {} bytes; the limit is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

fn to_wit(e: KvError) -> store::Error {
    store::Error::Other(e.to_string())
}

impl store::Host for KeyValueView<'_> {
    fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<BucketHandle>, store::Error>> {
        if identifier.is_empty() || identifier.len() > 128 {
            return Ok(Err(store::Error::Other(
                "bucket names are 1 to 128 bytes".into(),
            )));
        }
        Ok(Ok(self.table.push(BucketHandle { name: identifier })?))
    }
}

impl store::HostBucket for KeyValueView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let name = self.bucket(&bucket)?;
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        Ok(self.ctx.read_value(&name, &key).await.map_err(to_wit))
    }

    async fn set(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let name = self.bucket(&bucket)?;
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Ok(Err(store::Error::Other(format!(
                "value is {} bytes; the limit is {MAX_VALUE_BYTES}",
                value.len()
            ))));
        }
        let ctx = &self.ctx;
        let size = value.len();
        ctx.pace.write.wait(key.len() + size).await;
        let result = ctx
            .kv
            .set(&ctx.namespace, &name, &key, value, ctx.quota)
            .await
            .map_err(to_wit);
        match result {
            Ok(()) => ctx
                .activity
                .key_value(&name, &key, format!("set ({size} bytes)")),
            Err(_) => ctx.pace.write.refund(key.len() + size),
        }
        Ok(result)
    }

    async fn delete(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let name = self.bucket(&bucket)?;
        let ctx = &self.ctx;
        ctx.pace.write.wait(key.len()).await;
        let result = ctx
            .kv
            .delete(&ctx.namespace, &name, &key)
            .await
            .map_err(to_wit);
        if result.is_ok() {
            ctx.activity.key_value(&name, &key, "delete".into());
        }
        Ok(result)
    }

    async fn exists(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let name = self.bucket(&bucket)?;
        let value = self.ctx.read_value(&name, &key).await;
        Ok(value.map(|v| v.is_some()).map_err(to_wit))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let name = self.bucket(&bucket)?;
        let after = match cursor {
            None | Some(0) => None,
            Some(n) => match self.ctx.cursors.get(n as usize - 1) {
                Some(key) => Some(key.clone()),
                None => {
                    return Ok(Err(store::Error::Other(format!(
                        "cursor {n} is not one this delivery was given"
                    ))));
                }
            },
        };
        let ctx = &mut self.ctx;
        // One more than a page tells whether there is a next page.
        let mut keys = match ctx
            .kv
            .keys(&ctx.namespace, &name, after, LIST_PAGE + 1)
            .await
        {
            Ok(keys) => keys,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        ctx.read(keys.iter().map(String::len).sum()).await;
        let more = keys.len() > LIST_PAGE;
        keys.truncate(LIST_PAGE);
        let cursor = match keys.last() {
            Some(last) if more && ctx.cursors.len() < MAX_CURSORS => {
                ctx.cursors.push(last.clone());
                Some(ctx.cursors.len() as u64)
            }
            Some(_) if more => {
                return Ok(Err(store::Error::Other(format!(
                    "more than {MAX_CURSORS} pages listed in one delivery"
                ))));
            }
            _ => None,
        };
        Ok(Ok(store::KeyResponse { keys, cursor }))
    }

    fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: u64,
    ) -> wasmtime::Result<Result<u64, store::Error>> {
        let name = self.bucket(&bucket)?;
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        let ctx = &self.ctx;
        ctx.pace.write.wait(key.len() + 8).await;
        let result = ctx
            .kv
            .increment(&ctx.namespace, &name, &key, delta, ctx.quota)
            .await
            .map_err(to_wit);
        if let Ok(value) = result {
            ctx.activity
                .key_value(&name, &key, format!("increment by {delta} → {value}"));
        }
        Ok(result)
    }
}
