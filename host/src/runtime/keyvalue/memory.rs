//! In-process key-value state, gone when the host stops (`gridlet run`).

use super::{KeyValue, KvError, KvQuota, decode_counter};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

type Map = BTreeMap<(String, String, String), Vec<u8>>;

/// Plugin state in a map, with the same quotas as the journal's.
#[derive(Debug, Default)]
pub struct MemoryKeyValue {
    map: Mutex<Map>,
}

impl MemoryKeyValue {
    fn map(&self) -> MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn id(namespace: &str, bucket: &str, key: &str) -> (String, String, String) {
    (namespace.to_string(), bucket.to_string(), key.to_string())
}

/// Would writing `value` at `at` take `namespace` over `quota`? Growing is
/// checked; shrinking or replacing in place is always allowed.
fn over_quota(map: &Map, at: &(String, String, String), value: &[u8], quota: KvQuota) -> bool {
    let entry = |k: &(String, String, String), v: &[u8]| (k.1.len() + k.2.len() + v.len()) as u64;
    let old = map.get(at);
    if old.is_some_and(|o| value.len() <= o.len()) {
        return false;
    }
    let (mut keys, mut bytes) = (0u64, 0u64);
    for (k, v) in map.iter().filter(|(k, _)| k.0 == at.0) {
        keys += 1;
        bytes += entry(k, v);
    }
    if let Some(old) = old {
        keys -= 1;
        bytes -= entry(at, old);
    }
    keys + 1 > quota.max_keys || bytes + entry(at, value) > quota.max_bytes
}

fn quota_error(quota: KvQuota) -> KvError {
    KvError::Limit(format!(
        "key-value quota reached: this plugin may keep {} keys and {} bytes (delete some first)",
        quota.max_keys, quota.max_bytes
    ))
}

#[async_trait::async_trait]
impl KeyValue for MemoryKeyValue {
    async fn get(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.map().get(&id(namespace, bucket, key)).cloned())
    }

    async fn set(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
        quota: KvQuota,
    ) -> Result<(), KvError> {
        let mut map = self.map();
        let at = id(namespace, bucket, key);
        if over_quota(&map, &at, &value, quota) {
            return Err(quota_error(quota));
        }
        map.insert(at, value);
        Ok(())
    }

    async fn delete(&self, namespace: &str, bucket: &str, key: &str) -> Result<(), KvError> {
        self.map().remove(&id(namespace, bucket, key));
        Ok(())
    }

    async fn keys(
        &self,
        namespace: &str,
        bucket: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<String>, KvError> {
        Ok(self
            .map()
            .keys()
            .filter(|(n, b, k)| {
                n == namespace && b == bucket && after.as_ref().is_none_or(|a| k > a)
            })
            .take(limit)
            .map(|(_, _, k)| k.clone())
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
        let mut map = self.map();
        let at = id(namespace, bucket, key);
        let value = match map.get(&at) {
            Some(bytes) => decode_counter(key, bytes)?,
            None => 0,
        }
        .wrapping_add(delta);
        let bytes = value.to_le_bytes().to_vec();
        if over_quota(&map, &at, &bytes, quota) {
            return Err(quota_error(quota));
        }
        map.insert(at, bytes);
        Ok(value)
    }
}
