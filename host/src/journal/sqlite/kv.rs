//! Plugins' key-value writes, made by the writer thread inside its group's
//! transaction: each checked against the plugin's quota (usage as
//! committed plus the group's own writes), reading only the old entry's
//! size unless its value is needed (a counter).

use super::super::JournalError;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::collections::HashMap;

/// A plugin's key-value write.
#[derive(Debug, Clone)]
pub enum KvWrite {
    /// Set `key` to `value`.
    Set {
        /// The plugin's namespace.
        namespace: String,
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key` (no error when absent).
    Delete {
        /// The plugin's namespace.
        namespace: String,
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// Add `delta` to the counter at `key` (8-byte little-endian; absent is 0).
    Increment {
        /// The plugin's namespace.
        namespace: String,
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// What to add.
        delta: u64,
    },
}

/// The most one plugin's key-value state may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvQuota {
    /// Entries, across its buckets.
    pub max_keys: u64,
    /// Bytes of buckets, keys and values.
    pub max_bytes: u64,
}

/// Why a key-value write was not made.
#[derive(Debug, thiserror::Error)]
pub enum KvRefusal {
    /// It would take the plugin over its quota.
    #[error("{0}")]
    Quota(String),
    /// The value at the key is not a counter.
    #[error("value at `{0}` is not a counter (8-byte little-endian u64)")]
    NotACounter(String),
    /// The journal could not commit.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Called once a key-value write is committed (or refused): the counter's
/// new value for an increment.
pub type KvDone = Box<dyn FnOnce(Result<Option<u64>, KvRefusal>) + Send>;

/// A namespace's key-value usage.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Usage {
    keys: u64,
    bytes: u64,
}

/// Every namespace's usage, as committed.
pub(super) fn usage(conn: &Connection) -> Result<HashMap<String, Usage>, JournalError> {
    let mut stmt = conn.prepare(
        "SELECT namespace, count(*), sum(length(bucket) + length(key) + length(value))
         FROM kv GROUP BY namespace",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Usage {
                keys: r.get::<_, i64>(1)? as u64,
                bytes: r.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl KvWrite {
    /// The plugin's namespace, the bucket and the key written.
    fn place(&self) -> (&str, &str, &str) {
        match self {
            KvWrite::Set {
                namespace,
                bucket,
                key,
                ..
            }
            | KvWrite::Delete {
                namespace,
                bucket,
                key,
            }
            | KvWrite::Increment {
                namespace,
                bucket,
                key,
                ..
            } => (namespace, bucket, key),
        }
    }

    /// Bytes the write carries (what it costs a group commit).
    pub(super) fn bytes(&self) -> usize {
        match self {
            KvWrite::Set { value, .. } => value.len(),
            KvWrite::Delete { .. } | KvWrite::Increment { .. } => 8,
        }
    }
}

/// Make `op` within `tx`, if the namespace's quota allows: `committed` is
/// every namespace's usage as committed, `pending` this group's changes to
/// it (updated here). The counter's new value for an increment.
pub(super) fn write(
    tx: &Transaction<'_>,
    op: &KvWrite,
    quota: KvQuota,
    committed: &HashMap<String, Usage>,
    pending: &mut HashMap<String, Usage>,
) -> Result<Option<u64>, KvRefusal> {
    let (namespace, bucket, key) = op.place();
    let at = params![namespace, bucket, key];
    // The old entry's size; its bytes only for a counter. Reading a large
    // value just to learn its length would cost a page read per 4 KiB.
    let old_len: Option<usize> = tx
        .prepare_cached(
            "SELECT length(value) FROM kv WHERE namespace = ?1 AND bucket = ?2 AND key = ?3",
        )
        .map_err(JournalError::from)?
        .query_row(at, |r| r.get::<_, i64>(0))
        .optional()
        .map_err(JournalError::from)?
        .map(|n| n.max(0) as usize);
    let (new, answer) = match op {
        KvWrite::Set { value, .. } => (Some(value.clone()), None),
        KvWrite::Delete { .. } => (None, None),
        KvWrite::Increment { delta, .. } => {
            let current = match old_len {
                None => 0,
                Some(_) => {
                    let bytes: Vec<u8> = tx
                        .prepare_cached(
                            "SELECT value FROM kv WHERE namespace = ?1 AND bucket = ?2 AND key = ?3",
                        )
                        .map_err(JournalError::from)?
                        .query_row(at, |r| r.get(0))
                        .map_err(JournalError::from)?;
                    u64::from_le_bytes(
                        bytes
                            .as_slice()
                            .try_into()
                            .map_err(|_| KvRefusal::NotACounter(key.to_string()))?,
                    )
                }
            };
            let value = current.wrapping_add(*delta);
            (Some(value.to_le_bytes().to_vec()), Some(value))
        }
    };
    let entry = |len: usize| (bucket.len() + key.len() + len) as u64;
    let mut usage = pending
        .get(namespace)
        .or_else(|| committed.get(namespace))
        .copied()
        .unwrap_or_default();
    if let Some(len) = old_len {
        usage.keys = usage.keys.saturating_sub(1);
        usage.bytes = usage.bytes.saturating_sub(entry(len));
    }
    match &new {
        Some(value) => {
            usage.keys += 1;
            usage.bytes += entry(value.len());
            // Shrinking or replacing with the same size is always allowed,
            // so a plugin at its quota can still update or clean up.
            let grows = old_len.is_none_or(|len| value.len() > len);
            if grows && (usage.keys > quota.max_keys || usage.bytes > quota.max_bytes) {
                return Err(KvRefusal::Quota(format!(
                    "key-value quota reached: this plugin may keep {} keys and {} bytes; \
                     the write would make {} keys and {} bytes (delete some first)",
                    quota.max_keys, quota.max_bytes, usage.keys, usage.bytes
                )));
            }
            tx.prepare_cached(
                "INSERT INTO kv (namespace, bucket, key, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (namespace, bucket, key) DO UPDATE SET value = excluded.value",
            )
            .map_err(JournalError::from)?
            .execute(params![namespace, bucket, key, value])
            .map_err(JournalError::from)?;
        }
        None => {
            tx.prepare_cached("DELETE FROM kv WHERE namespace = ?1 AND bucket = ?2 AND key = ?3")
                .map_err(JournalError::from)?
                .execute(at)
                .map_err(JournalError::from)?;
        }
    }
    pending.insert(namespace.to_string(), usage);
    Ok(answer)
}
