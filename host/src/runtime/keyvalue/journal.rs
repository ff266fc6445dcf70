//! Key-value state in the journal: kept across restarts and plugin reloads.
//! Reads run on the blocking pool against the journal's reader connection;
//! writes join the writer's next group commit, and their quota is checked
//! there, against what is committed.

use super::{KeyValue, KvError, KvQuota};
use crate::journal::{JournalError, KvRefusal, KvWrite, SqliteJournal};
use std::sync::Arc;

/// State in the journal, for `gridlet serve`.
pub struct JournalKeyValue(pub Arc<SqliteJournal>);

fn backend(e: JournalError) -> KvError {
    KvError::Backend(e.to_string())
}

impl JournalKeyValue {
    /// A blocking read, off the async workers.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteJournal) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, KvError> {
        let journal = self.0.clone();
        tokio::task::spawn_blocking(move || f(&journal))
            .await
            .map_err(|e| KvError::Backend(e.to_string()))?
            .map_err(backend)
    }

    /// A write, awaited until its group commit.
    async fn write(&self, write: KvWrite, quota: KvQuota) -> Result<Option<u64>, KvError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0.kv_write(
            write,
            quota,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(KvRefusal::Quota(why))) => Err(KvError::Limit(why)),
            Ok(Err(KvRefusal::NotACounter(key))) => Err(KvError::NotACounter(key)),
            Ok(Err(KvRefusal::Journal(e))) => Err(backend(e)),
            Err(_) => Err(KvError::Backend("the journal writer has stopped".into())),
        }
    }
}

#[async_trait::async_trait]
impl KeyValue for JournalKeyValue {
    async fn get(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, KvError> {
        let (n, b, k) = (namespace.to_string(), bucket.to_string(), key.to_string());
        self.read(move |j| j.kv_get(&n, &b, &k)).await
    }

    async fn set(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        value: Vec<u8>,
        quota: KvQuota,
    ) -> Result<(), KvError> {
        let write = KvWrite::Set {
            namespace: namespace.to_string(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            value,
        };
        self.write(write, quota).await.map(|_| ())
    }

    async fn delete(&self, namespace: &str, bucket: &str, key: &str) -> Result<(), KvError> {
        let write = KvWrite::Delete {
            namespace: namespace.to_string(),
            bucket: bucket.to_string(),
            key: key.to_string(),
        };
        // Deleting never grows anything: no quota applies.
        let unlimited = KvQuota {
            max_keys: u64::MAX,
            max_bytes: u64::MAX,
        };
        self.write(write, unlimited).await.map(|_| ())
    }

    async fn keys(
        &self,
        namespace: &str,
        bucket: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<String>, KvError> {
        let (n, b) = (namespace.to_string(), bucket.to_string());
        self.read(move |j| j.kv_keys(&n, &b, after.as_deref(), limit))
            .await
    }

    async fn increment(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        delta: u64,
        quota: KvQuota,
    ) -> Result<u64, KvError> {
        let write = KvWrite::Increment {
            namespace: namespace.to_string(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            delta,
        };
        Ok(self.write(write, quota).await?.unwrap_or(0))
    }
}
