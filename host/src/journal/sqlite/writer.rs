//! The writer thread: every write goes through it, and it commits
//! everything queued at that moment in one transaction (group commit):
//! appends from concurrent webhook requests, outcomes from concurrent
//! deliveries and plugins' key-value writes share one fsync instead of
//! queueing for one each. Each write is answered once committed.

use super::super::{Appended, Completion, JournalError, NewEvent, Settlement, now_ms};
use super::stored::{Recent, schema_name};
use crate::event::Event;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// How long an event id is remembered for dedup: Event Grid's longest TTL.
pub(super) const DEDUP_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// Most writes folded into one transaction.
const MAX_GROUP: usize = 256;
/// How often old rows are purged.
const PURGE_EVERY_MS: i64 = 60_000;
/// How long a finished event keeps its text before only its dedup key is
/// kept (a grace period for readers in flight).
const SHED_AFTER_MS: i64 = 60_000;

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

/// Work for the writer thread.
pub(super) enum Write {
    Append(
        Vec<NewEvent>,
        Box<dyn FnOnce(Result<Appended, JournalError>) + Send>,
    ),
    Settle(Settlement, Completion),
    Kv(KvWrite, KvQuota, KvDone),
    /// Dead-letter a waiting plugin's deliveries past their time-to-live.
    Expire {
        plugin: String,
        received_before_ms: i64,
        done: Box<dyn FnOnce(Result<u64, JournalError>) + Send>,
    },
    Flush(Completion),
    /// A real write, to prove the journal can commit (readiness).
    Probe(Completion),
}

impl Write {
    /// Answer the write's waiter with `error`: nothing of it was stored.
    pub(super) fn fail(self, error: &JournalError) {
        let error = JournalError(error.0.clone());
        match self {
            Write::Append(_, reply) => reply(Err(error)),
            Write::Kv(_, _, done) => done(Err(KvRefusal::Journal(error))),
            Write::Expire { done, .. } => done(Err(error)),
            Write::Settle(_, done) | Write::Flush(done) | Write::Probe(done) => done(Err(error)),
        }
    }
}

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

/// What the writer thread keeps between groups.
pub(super) struct Writer {
    pub(super) conn: Arc<Mutex<Connection>>,
    pub(super) recent: Arc<Mutex<Recent>>,
    pub(super) usage: HashMap<String, Usage>,
    pub(super) dead_letter_retention: Duration,
    /// Set while commits fail; cleared by the next that succeeds.
    pub(super) failing: Arc<std::sync::atomic::AtomicBool>,
    /// Deliveries in the table, kept exact from every commit's changes.
    pub(super) outstanding: Arc<std::sync::atomic::AtomicI64>,
}

/// What one group did, applied once it is committed.
#[derive(Default)]
struct Group {
    appended: Vec<Appended>,
    stored: Vec<(i64, Arc<Event>)>,
    usage: HashMap<String, Usage>,
    kv: Vec<Result<Option<u64>, KvRefusal>>,
    expired: Vec<u64>,
    /// Deliveries added minus deliveries removed.
    deliveries: i64,
}

impl Writer {
    /// Take one write, fold in whatever else is queued, commit them
    /// together, answer every one. Ends when the journal is dropped.
    pub(super) fn run(mut self, rx: &mpsc::Receiver<Write>) {
        let mut last_purge = 0;
        while let Ok(first) = rx.recv() {
            let mut writes = vec![first];
            while writes.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(write) => writes.push(write),
                    Err(_) => break,
                }
            }
            let now = now_ms();
            let conn = self.conn.clone();
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            let result = self.group(&mut conn, &writes, now);
            self.answer(writes, result, now);
            if now - last_purge > PURGE_EVERY_MS {
                last_purge = now;
                if let Err(e) = self.purge(&conn, now) {
                    tracing::warn!("journal purge failed (it runs again in a minute): {e}");
                }
            }
        }
    }

    fn group(
        &self,
        conn: &mut Connection,
        writes: &[Write],
        now: i64,
    ) -> Result<Group, JournalError> {
        let tx = conn.transaction()?;
        let mut group = Group::default();
        for write in writes {
            match write {
                Write::Append(batch, _) => {
                    let appended = insert(&tx, batch, now, &mut group.stored)?;
                    group.deliveries += appended.deliveries as i64;
                    group.appended.push(appended);
                }
                Write::Settle(settlement, _) => group.deliveries -= settle(&tx, settlement)?,
                Write::Kv(op, quota, _) => {
                    let result = self.kv(&tx, op, *quota, &mut group.usage);
                    // A refusal is the plugin's answer; a database error
                    // fails the whole group.
                    let result = match result {
                        Err(KvRefusal::Journal(e)) => return Err(e),
                        other => other,
                    };
                    group.kv.push(result);
                }
                Write::Expire {
                    plugin,
                    received_before_ms,
                    ..
                } => {
                    let n = expire(&tx, plugin, *received_before_ms, now)?;
                    group.deliveries -= n as i64;
                    group.expired.push(n);
                }
                Write::Flush(_) => {}
                Write::Probe(_) => {
                    tx.prepare_cached(
                        "INSERT INTO health (id, checked_at) VALUES (1, ?1)
                         ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                    )?
                    .execute(params![now])?;
                }
            }
        }
        tx.commit()?;
        Ok(group)
    }

    fn answer(&mut self, writes: Vec<Write>, result: Result<Group, JournalError>, now: i64) {
        use std::sync::atomic::Ordering;
        let group = match result {
            Ok(group) => group,
            Err(e) => {
                if !self.failing.swap(true, Ordering::SeqCst) {
                    tracing::error!("journal commit failed: {e}");
                }
                for write in writes {
                    write.fail(&e);
                }
                return;
            }
        };
        if self.failing.swap(false, Ordering::SeqCst) {
            tracing::info!("the journal commits again");
        }
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            for (seq, event) in group.stored {
                recent.keep(seq, event, now);
            }
        }
        self.usage.extend(group.usage);
        self.outstanding
            .fetch_add(group.deliveries, std::sync::atomic::Ordering::SeqCst);
        let mut appended = group.appended.into_iter();
        let mut kv = group.kv.into_iter();
        let mut expired = group.expired.into_iter();
        for write in writes {
            match write {
                Write::Append(_, reply) => reply(Ok(appended.next().unwrap_or_default())),
                Write::Kv(_, _, done) => done(kv.next().unwrap_or(Ok(None))),
                Write::Expire { done, .. } => done(Ok(expired.next().unwrap_or(0))),
                Write::Settle(_, done) | Write::Flush(done) | Write::Probe(done) => done(Ok(())),
            }
        }
    }

    /// One key-value write within the group's transaction, checked against
    /// the namespace's quota (usage as committed plus this group's writes).
    fn kv(
        &self,
        tx: &rusqlite::Transaction<'_>,
        op: &KvWrite,
        quota: KvQuota,
        pending: &mut HashMap<String, Usage>,
    ) -> Result<Option<u64>, KvRefusal> {
        let (namespace, bucket, key) = match op {
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
        };
        let old: Option<Vec<u8>> = tx
            .prepare_cached(
                "SELECT value FROM kv WHERE namespace = ?1 AND bucket = ?2 AND key = ?3",
            )
            .map_err(JournalError::from)?
            .query_row(params![namespace, bucket, key], |r| r.get(0))
            .optional()
            .map_err(JournalError::from)?;
        let (new, answer) = match op {
            KvWrite::Set { value, .. } => (Some(value.clone()), None),
            KvWrite::Delete { .. } => (None, None),
            KvWrite::Increment { delta, .. } => {
                let current = match &old {
                    Some(bytes) => u64::from_le_bytes(
                        bytes
                            .as_slice()
                            .try_into()
                            .map_err(|_| KvRefusal::NotACounter(key.clone()))?,
                    ),
                    None => 0,
                };
                let value = current.wrapping_add(*delta);
                (Some(value.to_le_bytes().to_vec()), Some(value))
            }
        };
        let entry = |v: &Vec<u8>| (bucket.len() + key.len() + v.len()) as u64;
        let mut usage = pending
            .get(namespace)
            .or_else(|| self.usage.get(namespace))
            .copied()
            .unwrap_or_default();
        if let Some(old) = &old {
            usage.keys = usage.keys.saturating_sub(1);
            usage.bytes = usage.bytes.saturating_sub(entry(old));
        }
        match &new {
            Some(value) => {
                let grown = new_entry_grows(&old, value);
                usage.keys += 1;
                usage.bytes += entry(value);
                if grown && (usage.keys > quota.max_keys || usage.bytes > quota.max_bytes) {
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
                tx.prepare_cached(
                    "DELETE FROM kv WHERE namespace = ?1 AND bucket = ?2 AND key = ?3",
                )
                .map_err(JournalError::from)?
                .execute(params![namespace, bucket, key])
                .map_err(JournalError::from)?;
            }
        }
        pending.insert(namespace.clone(), usage);
        Ok(answer)
    }

    /// Drop what only dedup or nobody needs any more: dead letters past
    /// their retention; the text of events whose deliveries are all over
    /// (only the dedup key stays); events past the dedup window that
    /// nothing refers to. Every step uses an index.
    fn purge(&self, conn: &Connection, now: i64) -> Result<(), JournalError> {
        let retention = self.dead_letter_retention.as_millis() as i64;
        conn.execute(
            "DELETE FROM dead_letters WHERE dead_at < ?1",
            params![now - retention],
        )?;
        conn.execute(
            "UPDATE events SET body = '' WHERE body <> '' AND received_at < ?1
             AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = events.seq)
             AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE event_seq = events.seq)",
            params![now - SHED_AFTER_MS],
        )?;
        conn.execute(
            "DELETE FROM events WHERE received_at < ?1
             AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = events.seq)
             AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE event_seq = events.seq)",
            params![now - DEDUP_WINDOW_MS],
        )?;
        Ok(())
    }
}

/// Does writing `value` over `old` take more room? Shrinking or replacing
/// with the same size is always allowed, so a plugin at its quota can still
/// update or clean up.
fn new_entry_grows(old: &Option<Vec<u8>>, value: &[u8]) -> bool {
    old.as_ref().is_none_or(|o| value.len() > o.len())
}

fn insert(
    tx: &rusqlite::Transaction<'_>,
    batch: &[NewEvent],
    now: i64,
    kept: &mut Vec<(i64, Arc<Event>)>,
) -> Result<Appended, JournalError> {
    let mut appended = Appended::default();
    let mut add_event = tx.prepare_cached(
        "INSERT INTO events (topic_key, event_id, body, received_at, format, schema, topic,
                             event_type, subscription, delivery_count, data_version_header)
         VALUES (?1, ?2, ?3, ?4, 2, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (topic_key, event_id) DO NOTHING",
    )?;
    let mut add_delivery = tx
        .prepare_cached("INSERT INTO deliveries (event_seq, plugin, due_at) VALUES (?1, ?2, ?3)")?;
    for new in batch {
        let e = &new.event;
        // An event no plugin wants is kept for dedup only: its key, not its text.
        let body: &str = if new.plugins.is_empty() { "" } else { &e.raw };
        let inserted = add_event.execute(params![
            e.topic.to_lowercase(),
            e.id,
            body,
            now,
            schema_name(e.schema),
            e.topic,
            e.event_type,
            e.delivery.subscription_name,
            e.delivery.delivery_count,
            e.delivery.data_version,
        ])?;
        if inserted == 0 {
            appended.duplicates += 1;
            continue;
        }
        appended.events += 1;
        let seq = tx.last_insert_rowid();
        if !new.plugins.is_empty() {
            kept.push((seq, new.event.clone()));
        }
        for plugin in &new.plugins {
            add_delivery.execute(params![seq, plugin, now])?;
            appended.deliveries += 1;
        }
    }
    Ok(appended)
}

/// Dead-letter `plugin`'s deliveries of events accepted before `before`.
fn expire(
    tx: &rusqlite::Transaction<'_>,
    plugin: &str,
    before: i64,
    now: i64,
) -> Result<u64, JournalError> {
    tx.prepare_cached(
        "INSERT INTO dead_letters (event_seq, plugin, reason, attempts, last_error, dead_at)
         SELECT d.event_seq, d.plugin, 'TimeToLiveExceeded', d.attempts,
                'the event outlived its time-to-live while no version of the plugin served', ?3
         FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.plugin = ?1 AND e.received_at < ?2",
    )?
    .execute(params![plugin, before, now])?;
    let n = tx
        .prepare_cached(
            "DELETE FROM deliveries WHERE plugin = ?1
             AND event_seq IN (SELECT seq FROM events WHERE received_at < ?2)",
        )?
        .execute(params![plugin, before])?;
    Ok(n as u64)
}

/// Record one outcome; the number of deliveries it ended (0 or 1).
fn settle(tx: &rusqlite::Transaction<'_>, settlement: &Settlement) -> Result<i64, JournalError> {
    let ended = match settlement {
        Settlement::Complete(id) => tx
            .prepare_cached("DELETE FROM deliveries WHERE id = ?1")?
            .execute(params![id])?,
        Settlement::RetryAt { id, due_ms, error } => {
            tx.prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, due_at = ?2, last_error = ?3
                 WHERE id = ?1",
            )?
            .execute(params![id, due_ms, error])?;
            0
        }
        Settlement::Postpone { id, due_ms } => {
            tx.prepare_cached("UPDATE deliveries SET due_at = ?2 WHERE id = ?1")?
                .execute(params![id, due_ms])?;
            0
        }
        Settlement::DeadLetter {
            id,
            reason,
            error,
            at_ms,
            attempts,
        } => {
            tx.prepare_cached(
                "INSERT INTO dead_letters (event_seq, plugin, reason, attempts, last_error, dead_at)
                 SELECT event_seq, plugin, ?2, ?5, ?3, ?4 FROM deliveries WHERE id = ?1",
            )?
            .execute(params![id, reason.as_str(), error, at_ms, attempts])?;
            tx.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?
                .execute(params![id])?
        }
    };
    Ok(ended as i64)
}
