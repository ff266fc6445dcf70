//! `wasi:keyvalue`: each plugin gets a namespace of its own (its name), with
//! any number of buckets inside. Backends sit behind [`KeyValue`]:
//! [`JournalKeyValue`] keeps state in the journal (durable, for `serve`),
//! [`MemoryKeyValue`] in process (for `gridlet run`).

use super::activity::Activity;
use super::bindings::BucketHandle;
use super::bindings::wasi::keyvalue::{atomics, store};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasData, Resource, ResourceTable};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Keys returned per `list-keys` page.
pub const LIST_PAGE: usize = 1000;

/// A key-value failure, as the plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key or value is over its limit.
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
pub trait KeyValue: Send + Sync + 'static {
    /// Read a value.
    fn get(&self, namespace: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Write a value.
    fn set(&self, namespace: &str, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError>;
    /// Remove a value (no error when absent).
    fn delete(&self, namespace: &str, bucket: &str, key: &str) -> Result<(), KvError>;
    /// Keys in order, starting at `cursor` (an offset); returns the next cursor.
    fn list_keys(
        &self,
        namespace: &str,
        bucket: &str,
        cursor: u64,
    ) -> Result<(Vec<String>, Option<u64>), KvError>;
    /// Add `delta` to a counter (absent counts as 0) and return the new value.
    fn increment(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        delta: u64,
    ) -> Result<u64, KvError>;
}

/// In-process state: gone when the host stops.
#[derive(Debug, Default)]
pub struct MemoryKeyValue {
    map: Mutex<BTreeMap<(String, String, String), Vec<u8>>>,
}

type Map = BTreeMap<(String, String, String), Vec<u8>>;

impl MemoryKeyValue {
    fn map(&self) -> std::sync::MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn id(namespace: &str, bucket: &str, key: &str) -> (String, String, String) {
    (namespace.to_string(), bucket.to_string(), key.to_string())
}

/// Read a counter's stored bytes.
pub fn decode_counter(key: &str, bytes: &[u8]) -> Result<u64, KvError> {
    let bytes: [u8; 8] = bytes
        .try_into()
        .map_err(|_| KvError::NotACounter(key.to_string()))?;
    Ok(u64::from_le_bytes(bytes))
}

impl KeyValue for MemoryKeyValue {
    fn get(&self, namespace: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.map().get(&id(namespace, bucket, key)).cloned())
    }

    fn set(&self, namespace: &str, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.map()
            .insert(id(namespace, bucket, key), value.to_vec());
        Ok(())
    }

    fn delete(&self, namespace: &str, bucket: &str, key: &str) -> Result<(), KvError> {
        self.map().remove(&id(namespace, bucket, key));
        Ok(())
    }

    fn list_keys(
        &self,
        namespace: &str,
        bucket: &str,
        cursor: u64,
    ) -> Result<(Vec<String>, Option<u64>), KvError> {
        let map = self.map();
        let all: Vec<String> = map
            .keys()
            .filter(|(n, b, _)| n == namespace && b == bucket)
            .map(|(_, _, k)| k.clone())
            .collect();
        let start = usize::try_from(cursor).unwrap_or(usize::MAX).min(all.len());
        let end = (start + LIST_PAGE).min(all.len());
        let next = (end < all.len()).then_some(end as u64);
        Ok((all[start..end].to_vec(), next))
    }

    fn increment(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        delta: u64,
    ) -> Result<u64, KvError> {
        let mut map = self.map();
        let slot = map
            .entry(id(namespace, bucket, key))
            .or_insert_with(|| 0u64.to_le_bytes().to_vec());
        let value = decode_counter(key, slot)?.wrapping_add(delta);
        *slot = value.to_le_bytes().to_vec();
        Ok(value)
    }
}

/// State in the journal: kept across restarts and plugin reloads.
pub struct JournalKeyValue(pub Arc<crate::journal::SqliteJournal>);

impl KeyValue for JournalKeyValue {
    fn get(&self, namespace: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.0.kv_get(namespace, bucket, key).map_err(backend)
    }

    fn set(&self, namespace: &str, bucket: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.0
            .kv_set(namespace, bucket, key, value)
            .map_err(backend)
    }

    fn delete(&self, namespace: &str, bucket: &str, key: &str) -> Result<(), KvError> {
        self.0.kv_delete(namespace, bucket, key).map_err(backend)
    }

    fn list_keys(
        &self,
        namespace: &str,
        bucket: &str,
        cursor: u64,
    ) -> Result<(Vec<String>, Option<u64>), KvError> {
        // One more than a page tells whether there is a next page.
        let mut keys = self
            .0
            .kv_keys(namespace, bucket, cursor, LIST_PAGE + 1)
            .map_err(backend)?;
        let next = (keys.len() > LIST_PAGE).then(|| cursor + LIST_PAGE as u64);
        keys.truncate(LIST_PAGE);
        Ok((keys, next))
    }

    fn increment(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        delta: u64,
    ) -> Result<u64, KvError> {
        self.0
            .kv_update(namespace, bucket, key, |old| {
                let value = match old {
                    Some(bytes) => decode_counter(key, &bytes)?,
                    None => 0,
                }
                .wrapping_add(delta);
                Ok((value.to_le_bytes().to_vec(), value))
            })
            .map_err(backend)?
    }
}

fn backend(e: crate::journal::JournalError) -> KvError {
    KvError::Backend(e.to_string())
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

/// The `wasi:keyvalue` capability's state for one delivery: whose
/// namespace, which backend, where changes are recorded.
pub struct PluginKeyValue {
    namespace: Arc<str>,
    kv: Arc<dyn KeyValue>,
    activity: Arc<Activity>,
}

impl PluginKeyValue {
    /// The capability for plugin `namespace` over `kv`.
    pub fn new(namespace: Arc<str>, kv: Arc<dyn KeyValue>, activity: Arc<Activity>) -> Self {
        Self {
            namespace,
            kv,
            activity,
        }
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
    fn get(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let name = self.bucket(&bucket)?;
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        Ok(self
            .ctx
            .kv
            .get(&self.ctx.namespace, &name, &key)
            .map_err(to_wit))
    }

    fn set(
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
        let result = self
            .ctx
            .kv
            .set(&self.ctx.namespace, &name, &key, &value)
            .map_err(to_wit);
        if result.is_ok() {
            self.ctx
                .activity
                .key_value(&name, &key, format!("set ({} bytes)", value.len()));
        }
        Ok(result)
    }

    fn delete(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let name = self.bucket(&bucket)?;
        let result = self
            .ctx
            .kv
            .delete(&self.ctx.namespace, &name, &key)
            .map_err(to_wit);
        if result.is_ok() {
            self.ctx.activity.key_value(&name, &key, "delete".into());
        }
        Ok(result)
    }

    fn exists(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let name = self.bucket(&bucket)?;
        Ok(self
            .ctx
            .kv
            .get(&self.ctx.namespace, &name, &key)
            .map(|v| v.is_some())
            .map_err(to_wit))
    }

    fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        let name = self.bucket(&bucket)?;
        Ok(self
            .ctx
            .kv
            .list_keys(&self.ctx.namespace, &name, cursor.unwrap_or(0))
            .map(|(keys, cursor)| store::KeyResponse { keys, cursor })
            .map_err(to_wit))
    }

    fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    fn increment(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        delta: u64,
    ) -> wasmtime::Result<Result<u64, store::Error>> {
        let name = self.bucket(&bucket)?;
        if let Err(e) = check_key(&key) {
            return Ok(Err(e));
        }
        let result = self
            .ctx
            .kv
            .increment(&self.ctx.namespace, &name, &key, delta)
            .map_err(to_wit);
        if let Ok(value) = result {
            self.ctx
                .activity
                .key_value(&name, &key, format!("increment by {delta} → {value}"));
        }
        Ok(result)
    }
}
