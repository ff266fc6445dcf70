//! The embedded journal: one SQLite file (WAL) in the state folder.
//!
//! Every write goes through one writer thread ([`writer`]) that commits
//! everything queued at that moment in one transaction (group commit);
//! reads use a connection of their own ([`read`]); events are stored as the
//! text they arrived in ([`stored`]).

mod kv;
mod read;
mod rows;
mod schema;
mod stored;
mod writer;

pub use kv::{KvDone, KvQuota, KvRefusal, KvWrite};

use super::{
    AppendCompletion, Appended, Claimed, Completion, DeadLetter, DeadLetterReason, Journal,
    JournalError, NewEvent, PendingDelivery, Replayed, Settlement, Slots,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::Duration;
use stored::Recent;
use writer::{Write, Writer};

/// How the journal is kept.
#[derive(Debug, Clone, Copy)]
pub struct JournalSettings {
    /// fsync every commit (`synchronous=FULL`); without, only WAL
    /// checkpoints are (`NORMAL`: a power loss may lose the last commits, a
    /// process crash not).
    pub durable: bool,
    /// How long dead letters are kept (then purged with their events).
    pub dead_letter_retention: Duration,
    /// How often old rows are purged.
    pub purge_every: Duration,
    /// How long a finished event keeps its text before only its dedup key
    /// is kept (a grace period for readers in flight).
    pub shed_after: Duration,
}

impl Default for JournalSettings {
    fn default() -> Self {
        Self {
            durable: true,
            dead_letter_retention: Duration::from_secs(30 * 24 * 60 * 60),
            purge_every: Duration::from_secs(60),
            shed_after: Duration::from_secs(60),
        }
    }
}

/// The SQLite journal.
pub struct SqliteJournal {
    /// The writer's connection; locked by others only for rare admin
    /// transactions (replay, purge).
    conn: Arc<Mutex<Connection>>,
    reader: Mutex<Connection>,
    /// Plugins' key-value reads: a connection apart from `reader`, so a
    /// plugin reading in a loop never holds up claims of due deliveries.
    kv_reader: Mutex<Connection>,
    writes: Mutex<mpsc::Sender<Write>>,
    recent: Arc<Mutex<Recent>>,
    failing: Arc<AtomicBool>,
    outstanding: Arc<AtomicI64>,
}

impl SqliteJournal {
    /// Open (or create) `dir/journal.sqlite3`, fsyncing every commit when
    /// `durable`, with the default retention.
    pub fn open(dir: &Path, durable: bool) -> Result<Self, JournalError> {
        Self::open_with(
            dir,
            JournalSettings {
                durable,
                ..JournalSettings::default()
            },
        )
    }

    /// Open (or create) `dir/journal.sqlite3` with `settings`; a journal
    /// written by an earlier version is migrated.
    pub fn open_with(dir: &Path, settings: JournalSettings) -> Result<Self, JournalError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| JournalError(format!("{}: {e}", dir.display())))?;
        let mut conn = Connection::open(dir.join("journal.sqlite3"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = if settings.durable { "FULL" } else { "NORMAL" };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        schema::migrate(&mut conn)?;
        let usage = kv::usage(&conn)?;
        let outstanding: i64 =
            conn.query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0))?;
        let outstanding = Arc::new(AtomicI64::new(outstanding));
        let last_now: Option<i64> = conn
            .query_row(
                "SELECT received_at FROM events ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        // Reads (due deliveries, listings; key-value reads apart) use
        // connections of their own, so they never wait behind the writer's
        // commits.
        let open_reader = || -> Result<Mutex<Connection>, JournalError> {
            let reader = Connection::open(dir.join("journal.sqlite3"))?;
            reader.busy_timeout(Duration::from_secs(5))?;
            Ok(Mutex::new(reader))
        };
        let (reader, kv_reader) = (open_reader()?, open_reader()?);
        let conn = Arc::new(Mutex::new(conn));
        let recent = Arc::new(Mutex::new(Recent::default()));
        let failing = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Write>();
        let writer = Writer {
            conn: conn.clone(),
            recent: recent.clone(),
            usage,
            settings,
            failing: failing.clone(),
            outstanding: outstanding.clone(),
            last_now: last_now.unwrap_or(0),
        };
        std::thread::Builder::new()
            .name("gridlet-journal".into())
            .spawn(move || writer.run(&rx))
            .map_err(|e| JournalError(format!("cannot start the journal writer: {e}")))?;
        Ok(Self {
            conn,
            reader,
            kv_reader,
            writes: Mutex::new(tx),
            recent,
            failing,
            outstanding,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Is the writer's last commit one that failed (disk full, locked)?
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// Bytes of event text the recently-appended cache holds (bounded).
    pub fn cached_bytes(&self) -> usize {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bytes()
    }

    /// Read a key-value entry (blocking: call off the async workers).
    pub fn kv_get(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, JournalError> {
        Ok(self
            .kv_reader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .prepare_cached(
                "SELECT value FROM kv WHERE namespace = ?1 AND bucket = ?2 AND key = ?3",
            )?
            .query_row(params![ns, bucket, key], |r| r.get(0))
            .optional()?)
    }

    /// Up to `limit` keys of a bucket in order, after `after` (paging by
    /// key, so a page costs the same wherever it starts). Blocking.
    pub fn kv_keys(
        &self,
        ns: &str,
        bucket: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, JournalError> {
        let conn = self.kv_reader.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn.prepare_cached(
            "SELECT key FROM kv WHERE namespace = ?1 AND bucket = ?2 AND (?3 IS NULL OR key > ?3)
             ORDER BY key LIMIT ?4",
        )?;
        let keys = stmt
            .query_map(params![ns, bucket, after, limit as i64], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(keys)
    }

    /// Queue a key-value write for the next group commit, within `quota`;
    /// `done` is called once it is committed or refused.
    pub fn kv_write(&self, write: KvWrite, quota: KvQuota, done: KvDone) {
        self.queue(Write::Kv(write, quota, done));
    }

    /// Queue a write and wait for its commit.
    fn committed(&self, write: impl FnOnce(Completion) -> Write) -> Result<(), JournalError> {
        let (done, answer) = mpsc::channel();
        self.queue(write(Box::new(move |r| {
            let _ = done.send(r);
        })));
        answer
            .recv()
            .map_err(|_| JournalError("the journal writer has stopped".into()))?
    }

    /// Queue a write for the writer thread; one it can no longer take is
    /// answered with an error at once.
    fn queue(&self, write: Write) {
        let sent = self
            .writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(write);
        if let Err(mpsc::SendError(write)) = sent {
            write.fail(&JournalError("the journal writer has stopped".into()));
        }
    }
}

impl Journal for SqliteJournal {
    fn append(&self, batch: Vec<NewEvent>) -> Result<Appended, JournalError> {
        let (reply, answer) = mpsc::channel();
        self.queue(Write::Append(
            batch,
            Box::new(move |r| {
                let _ = reply.send(r);
            }),
        ));
        answer
            .recv()
            .map_err(|_| JournalError("the journal writer has stopped".into()))?
    }

    fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        slots: &[Slots],
        other_slots: u32,
        in_flight: &[i64],
    ) -> Result<Claimed, JournalError> {
        read::claim_due(
            &self.reader(),
            &self.recent,
            now_ms,
            limit,
            slots,
            other_slots,
            in_flight,
        )
    }

    fn next_due_ms(&self, slots: &[Slots]) -> Result<Option<i64>, JournalError> {
        read::next_due_ms(&self.reader(), slots)
    }

    fn complete(&self, id: i64) -> Result<(), JournalError> {
        self.committed(|done| Write::Settle(Settlement::Complete(id), done))
    }

    fn retry_at(&self, id: i64, due_ms: i64, error: &str) -> Result<(), JournalError> {
        let error = error.to_string();
        self.committed(|done| Write::Settle(Settlement::RetryAt { id, due_ms, error }, done))
    }

    fn postpone(&self, id: i64, due_ms: i64) -> Result<(), JournalError> {
        self.committed(|done| Write::Settle(Settlement::Postpone { id, due_ms }, done))
    }

    fn dead_letter(
        &self,
        id: i64,
        reason: DeadLetterReason,
        error: &str,
        now_ms: i64,
        attempts: u32,
    ) -> Result<(), JournalError> {
        let settlement = Settlement::DeadLetter {
            id,
            reason,
            error: error.to_string(),
            at_ms: now_ms,
            attempts,
        };
        self.committed(|done| Write::Settle(settlement, done))
    }

    fn expire(
        &self,
        plugin: &str,
        received_before_ms: i64,
        _now_ms: i64,
    ) -> Result<u64, JournalError> {
        let (reply, answer) = mpsc::channel();
        self.queue(Write::Expire {
            plugin: plugin.to_string(),
            received_before_ms,
            done: Box::new(move |r| {
                let _ = reply.send(r);
            }),
        });
        answer
            .recv()
            .map_err(|_| JournalError("the journal writer has stopped".into()))?
    }

    fn pending(&self) -> Result<u64, JournalError> {
        // Count after everything queued so far is committed.
        self.committed(Write::Flush)?;
        Ok(self
            .reader()
            .query_row("SELECT COUNT(*) FROM deliveries", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    fn outstanding(&self) -> u64 {
        self.outstanding.load(Ordering::SeqCst).max(0) as u64
    }

    fn append_then(&self, batch: Vec<NewEvent>, done: AppendCompletion) {
        self.queue(Write::Append(batch, done));
    }

    fn settle(&self, settlement: Settlement, done: Completion) {
        self.queue(Write::Settle(settlement, done));
    }

    fn check_writable(&self) -> Result<(), JournalError> {
        self.committed(Write::Probe)
    }

    fn deliveries(
        &self,
        plugin: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, JournalError> {
        read::deliveries(&self.reader(), plugin, limit)
    }

    fn delivery_counts(&self) -> Result<Vec<(String, u64, u64)>, JournalError> {
        let reader = self.reader();
        let mut query = reader.prepare_cached(
            "SELECT plugin, sum(attempts = 0), sum(attempts > 0) FROM deliveries
             GROUP BY plugin ORDER BY plugin",
        )?;
        let rows = query.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn dead_letters(&self, plugin: Option<&str>) -> Result<Vec<DeadLetter>, JournalError> {
        Ok(read::letters(
            &self.reader(),
            "WHERE ?1 IS NULL OR d.plugin = ?1",
            plugin.map(str::to_string).into(),
        )?
        .into_iter()
        .map(|(letter, _, _)| letter)
        .collect())
    }

    fn dead_letter_event(&self, id: i64) -> Result<Option<(DeadLetter, Value)>, JournalError> {
        read::dead_letter_event(&self.reader(), id)
    }

    fn purge(&self, ids: &[i64]) -> Result<u64, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut n = 0;
        for id in ids {
            n += tx.execute("DELETE FROM dead_letters WHERE id = ?1", params![id])? as u64;
        }
        tx.commit()?;
        Ok(n)
    }

    fn replay(&self, ids: &[i64], now_ms: i64, force: bool) -> Result<Replayed, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut done = Replayed::default();
        for id in ids {
            let n = tx.execute(
                "INSERT INTO deliveries (event_seq, plugin, due_at, ttl_from)
                 SELECT event_seq, plugin, ?2, ?2 FROM dead_letters
                 WHERE id = ?1 AND (?3 OR replayed_at IS NULL)",
                params![id, now_ms, force],
            )? as u64;
            if n == 0 {
                let exists: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM dead_letters WHERE id = ?1)",
                    params![id],
                    |r| r.get(0),
                )?;
                done.skipped += u64::from(exists);
                continue;
            }
            done.replayed += n;
            tx.execute(
                "UPDATE dead_letters SET replayed_at = ?2 WHERE id = ?1",
                params![id, now_ms],
            )?;
        }
        tx.commit()?;
        self.outstanding
            .fetch_add(done.replayed as i64, Ordering::SeqCst);
        Ok(done)
    }
}
