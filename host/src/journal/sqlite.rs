//! The embedded journal: one SQLite file (WAL) in the state folder.
//!
//! Appends go through one writer thread that commits everything queued at
//! that moment in one transaction (group commit): concurrent webhook requests
//! share an fsync instead of queueing for one each.

use super::{
    AppendCompletion, Appended, Completion, DeadLetter, DeadLetterReason, DueDelivery, Journal,
    JournalError, NewEvent, PendingDelivery, Replayed, Settlement, Slots, now_ms,
};
use crate::event::{DeliveryHeaders, Event, Schema, parse_cloud_event, parse_event_grid};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

/// How long an event id is remembered for dedup: Event Grid's longest TTL.
const DEDUP_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// Most append requests folded into one transaction.
const MAX_GROUP: usize = 256;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,
    topic_key   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    body        TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_identity ON events (topic_key, event_id);
CREATE TABLE IF NOT EXISTS deliveries (
    id          INTEGER PRIMARY KEY,
    event_seq   INTEGER NOT NULL REFERENCES events (seq),
    plugin      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,  -- attempts made (and recorded)
    due_at      INTEGER NOT NULL,
    last_error  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (due_at);
CREATE INDEX IF NOT EXISTS deliveries_plugin ON deliveries (plugin, due_at, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY,
    event_seq   INTEGER NOT NULL REFERENCES events (seq),
    plugin      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    last_error  TEXT NOT NULL,
    dead_at     INTEGER NOT NULL,
    replayed_at INTEGER
);
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    bucket    TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     BLOB NOT NULL,
    PRIMARY KEY (namespace, bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS health (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
";

type Done = Completion;

/// Work for the writer thread; each is answered once committed (an append
/// before the webhook answers 200, an outcome before the delivery may be
/// claimed again).
enum Write {
    Append(
        Vec<NewEvent>,
        Box<dyn FnOnce(Result<Appended, JournalError>) + Send>,
    ),
    Settle(Settlement, Done),
    Flush(Done),
    /// A real write, to prove the journal can commit (readiness).
    Probe(Done),
}

impl Write {
    /// Answer the write's waiter with `error`: nothing of it was stored.
    fn fail(self, error: &JournalError) {
        let error = JournalError(error.0.clone());
        match self {
            Write::Append(_, reply) => reply(Err(error)),
            Write::Settle(_, done) | Write::Flush(done) | Write::Probe(done) => done(Err(error)),
        }
    }
}

/// The SQLite journal.
pub struct SqliteJournal {
    conn: Arc<Mutex<Connection>>,
    reader: Mutex<Connection>,
    writes: Mutex<mpsc::Sender<Write>>,
    recent: Arc<Mutex<Recent>>,
}

/// Events appended lately, already parsed, by sequence number: most
/// deliveries are claimed moments after their event was appended, and
/// taking it from here saves reading and parsing its body again.
#[derive(Default)]
struct Recent {
    by_seq: std::collections::HashMap<i64, Arc<Event>>,
    order: std::collections::VecDeque<i64>,
}

/// Most events [`Recent`] keeps.
const RECENT_EVENTS: usize = 8192;

impl Recent {
    fn keep(&mut self, seq: i64, event: Arc<Event>) {
        if self.order.len() == RECENT_EVENTS
            && let Some(old) = self.order.pop_front()
        {
            self.by_seq.remove(&old);
        }
        self.order.push_back(seq);
        self.by_seq.insert(seq, event);
    }
}

impl SqliteJournal {
    /// Open (or create) `dir/journal.sqlite3`. With `durable`, every commit
    /// is fsynced (`synchronous=FULL`); without, only WAL checkpoints are
    /// (`NORMAL`: a power loss may lose the last commits, a process crash not).
    pub fn open(dir: &Path, durable: bool) -> Result<Self, JournalError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| JournalError(format!("{}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join("journal.sqlite3"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        // Reads (due deliveries, dead letters) use a connection of their own,
        // so they never wait behind the writer's commits (WAL allows it).
        let reader = Connection::open(dir.join("journal.sqlite3"))?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        let conn = Arc::new(Mutex::new(conn));
        let (tx, rx) = mpsc::channel::<Write>();
        let writer = conn.clone();
        let recent = Arc::new(Mutex::new(Recent::default()));
        let kept = recent.clone();
        std::thread::Builder::new()
            .name("gridlet-journal".into())
            .spawn(move || group_commit(&writer, &rx, &kept))
            .map_err(|e| JournalError(format!("cannot start the journal writer: {e}")))?;
        Ok(Self {
            recent,
            conn,
            reader: Mutex::new(reader),
            writes: Mutex::new(tx),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read a key-value entry.
    pub fn kv_get(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, JournalError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT value FROM kv WHERE namespace = ?1 AND bucket = ?2 AND key = ?3",
                params![ns, bucket, key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Write a key-value entry.
    pub fn kv_set(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        value: &[u8],
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "INSERT INTO kv (namespace, bucket, key, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (namespace, bucket, key) DO UPDATE SET value = excluded.value",
            params![ns, bucket, key, value],
        )?;
        Ok(())
    }

    /// Remove a key-value entry.
    pub fn kv_delete(&self, ns: &str, bucket: &str, key: &str) -> Result<(), JournalError> {
        self.conn().execute(
            "DELETE FROM kv WHERE namespace = ?1 AND bucket = ?2 AND key = ?3",
            params![ns, bucket, key],
        )?;
        Ok(())
    }

    /// Keys of a bucket in order, `limit` from `offset`.
    pub fn kv_keys(
        &self,
        ns: &str,
        bucket: &str,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<String>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT key FROM kv WHERE namespace = ?1 AND bucket = ?2 ORDER BY key LIMIT ?3 OFFSET ?4",
        )?;
        let keys = stmt
            .query_map(params![ns, bucket, limit as i64, offset as i64], |r| {
                r.get(0)
            })?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(keys)
    }

    /// Apply `f` to a value inside one transaction (read-modify-write). When
    /// `f` refuses, nothing is written and its error comes back inside `Ok`.
    pub fn kv_update<T, E>(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        f: impl FnOnce(Option<Vec<u8>>) -> Result<(Vec<u8>, T), E>,
    ) -> Result<Result<T, E>, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let old: Option<Vec<u8>> = tx
            .query_row(
                "SELECT value FROM kv WHERE namespace = ?1 AND bucket = ?2 AND key = ?3",
                params![ns, bucket, key],
                |r| r.get(0),
            )
            .optional()?;
        let (new, out) = match f(old) {
            Ok(updated) => updated,
            Err(refused) => return Ok(Err(refused)),
        };
        tx.execute(
            "INSERT INTO kv (namespace, bucket, key, value) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (namespace, bucket, key) DO UPDATE SET value = excluded.value",
            params![ns, bucket, key, new],
        )?;
        tx.commit()?;
        Ok(Ok(out))
    }
}

/// The writer thread: take one write, fold in whatever else is queued,
/// commit them together, answer the appends.
fn group_commit(conn: &Mutex<Connection>, rx: &mpsc::Receiver<Write>, recent: &Mutex<Recent>) {
    let mut last_purge = 0;
    while let Ok(first) = rx.recv() {
        let mut writes = vec![first];
        while writes.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(write) => writes.push(write),
                Err(_) => break,
            }
        }
        let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        let mut stored = Vec::new();
        let result = (|| -> Result<Vec<Appended>, JournalError> {
            let tx = conn.transaction()?;
            let mut appended = Vec::new();
            for write in &writes {
                match write {
                    Write::Append(batch, _) => appended.push(insert(&tx, batch, now, &mut stored)?),
                    Write::Settle(Settlement::Complete(id), _) => {
                        tx.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?
                            .execute(params![id])?;
                    }
                    Write::Settle(
                        Settlement::RetryAt {
                            id,
                            due_ms: due,
                            error,
                        },
                        _,
                    ) => {
                        tx.prepare_cached(
                            "UPDATE deliveries SET attempts = attempts + 1, due_at = ?2, last_error = ?3 WHERE id = ?1",
                        )?
                        .execute(params![id, due, error])?;
                    }
                    Write::Settle(
                        Settlement::DeadLetter {
                            id,
                            reason,
                            error,
                            at_ms: at,
                            attempts,
                        },
                        _,
                    ) => {
                        tx.prepare_cached(
                            "INSERT INTO dead_letters (event_seq, plugin, reason, attempts, last_error, dead_at)
                             SELECT event_seq, plugin, ?2, ?5, ?3, ?4 FROM deliveries WHERE id = ?1",
                        )?
                        .execute(params![id, reason.as_str(), error, at, attempts])?;
                        tx.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?
                            .execute(params![id])?;
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
            Ok(appended)
        })();
        match result {
            Ok(appended) => {
                let mut recent = recent.lock().unwrap_or_else(|e| e.into_inner());
                for (seq, event) in stored {
                    recent.keep(seq, event);
                }
                drop(recent);
                let mut appended = appended.into_iter();
                for write in writes {
                    match write {
                        Write::Append(_, reply) => {
                            reply(Ok(appended.next().unwrap_or_default()));
                        }
                        Write::Settle(_, done) | Write::Flush(done) | Write::Probe(done) => {
                            done(Ok(()));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!("journal commit failed: {e}");
                for write in writes {
                    write.fail(&e);
                }
            }
        }
        // Forget events past the dedup window once nothing refers to them.
        if now - last_purge > 60_000 {
            last_purge = now;
            let _ = conn.execute(
                "DELETE FROM events WHERE received_at < ?1
                 AND seq NOT IN (SELECT event_seq FROM deliveries)
                 AND seq NOT IN (SELECT event_seq FROM dead_letters)",
                params![now - DEDUP_WINDOW_MS],
            );
        }
    }
}

fn insert(
    tx: &rusqlite::Transaction<'_>,
    batch: &[NewEvent],
    now: i64,
    kept: &mut Vec<(i64, Arc<Event>)>,
) -> Result<Appended, JournalError> {
    let mut appended = Appended::default();
    let mut add_event = tx.prepare_cached(
        "INSERT INTO events (topic_key, event_id, body, received_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (topic_key, event_id) DO NOTHING",
    )?;
    let mut add_delivery = tx
        .prepare_cached("INSERT INTO deliveries (event_seq, plugin, due_at) VALUES (?1, ?2, ?3)")?;
    for new in batch {
        let e = &new.event;
        let inserted = add_event.execute(params![e.topic.to_lowercase(), e.id, stored(e), now])?;
        if inserted == 0 {
            appended.duplicates += 1;
            continue;
        }
        appended.events += 1;
        let seq = tx.last_insert_rowid();
        kept.push((seq, new.event.clone()));
        for plugin in &new.plugins {
            add_delivery.execute(params![seq, plugin, now])?;
            appended.deliveries += 1;
        }
    }
    Ok(appended)
}

/// The event in its own schema, plus the `aeg-*` headers, as stored.
fn stored(e: &Event) -> String {
    let envelope = match e.schema {
        Schema::EventGrid => json!({
            "id": e.id, "topic": e.topic, "subject": e.subject, "eventType": e.event_type,
            "eventTime": e.event_time, "dataVersion": e.data_version, "data": e.raw_data,
        }),
        Schema::CloudEvents => json!({
            "specversion": "1.0", "id": e.id, "source": e.topic, "subject": e.subject,
            "type": e.event_type, "time": e.event_time, "data": e.raw_data,
        }),
    };
    json!({
        "event": envelope,
        "subscription": e.delivery.subscription_name,
        "deliveryCount": e.delivery.delivery_count,
        "dataVersionHeader": e.delivery.data_version,
    })
    .to_string()
}

impl SqliteJournal {
    /// Queue a write and wait for its commit.
    fn committed(&self, write: impl FnOnce(Done) -> Write) -> Result<(), JournalError> {
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

    /// Dead letters matching `filter` (one `?1` parameter), newest first,
    /// with their stored event bodies.
    fn letters(
        &self,
        filter: &str,
        arg: rusqlite::types::Value,
    ) -> Result<Vec<(DeadLetter, String)>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT d.id, d.plugin, d.reason, d.attempts, d.last_error, d.dead_at, d.replayed_at,
                    e.body, e.received_at
             FROM dead_letters d JOIN events e ON e.seq = d.event_seq {filter} ORDER BY d.id DESC"
        ))?;
        let rows = stmt.query_map(params![arg], |r| {
            Ok((
                DeadLetter {
                    id: r.get(0)?,
                    event_id: String::new(),
                    topic: String::new(),
                    event_type: String::new(),
                    plugin: r.get(1)?,
                    reason: r.get(2)?,
                    delivery_attempts: r.get(3)?,
                    last_error: r.get(4)?,
                    publish_time_ms: r.get(8)?,
                    dead_lettered_ms: r.get(5)?,
                    replayed_ms: r.get(6)?,
                },
                r.get::<_, String>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut letter, body) = row?;
            let event = restore(&body)?;
            letter.event_id = event.id;
            letter.topic = event.topic;
            letter.event_type = event.event_type;
            out.push((letter, body));
        }
        Ok(out)
    }
}

fn restore(body: &str) -> Result<Event, JournalError> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| JournalError(format!("stored event: {e}")))?;
    let envelope = &v["event"];
    let mut event = if envelope.get("specversion").is_some() {
        parse_cloud_event(envelope, 0)
    } else {
        parse_event_grid(envelope, 0)
    }
    .map_err(|e| JournalError(format!("stored event: {e}")))?;
    event.delivery = DeliveryHeaders {
        subscription_name: v["subscription"].as_str().map(str::to_string),
        delivery_count: v["deliveryCount"].as_u64().map(|n| n as u32),
        data_version: v["dataVersionHeader"].as_str().map(str::to_string),
    };
    Ok(event)
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
    ) -> Result<Vec<DueDelivery>, JournalError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let conn = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        // Ids in flight as one JSON array parameter: the statements stay the
        // same text (prepared once, cached) whatever their number.
        let ids = |ids: &[i64]| serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
        // Each plugin's oldest due deliveries, as many as it has free slots,
        // by index; then those of plugins not named (not loaded any more).
        let mut rows: Vec<(i64, i64, i64, String, u32)> = Vec::new();
        let mut per_plugin = conn.prepare_cached(
            "SELECT due_at, id, event_seq, plugin, attempts + 1 FROM deliveries
             WHERE plugin = ?1 AND due_at <= ?2
               AND id NOT IN (SELECT value FROM json_each(?3))
             ORDER BY due_at, id LIMIT ?4",
        )?;
        for slot in slots.iter().filter(|s| s.free > 0) {
            let busy = ids(&slot.in_flight);
            let found = per_plugin
                .query_map(params![slot.plugin, now_ms, busy, slot.free], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?;
            for row in found {
                rows.push(row?);
            }
        }
        // Plugins not named are rare (removed plugins) and finding them scans
        // every due row: only when asked.
        if other_slots > 0 {
            let named: Vec<&str> = slots.iter().map(|s| s.plugin.as_str()).collect();
            let busy = ids(in_flight);
            let named = serde_json::to_string(&named).unwrap_or_else(|_| "[]".into());
            let mut others = conn.prepare_cached(
                "SELECT due_at, id, event_seq, plugin, attempts + 1 FROM deliveries
                 WHERE due_at <= ?1
                   AND plugin NOT IN (SELECT value FROM json_each(?2))
                   AND id NOT IN (SELECT value FROM json_each(?3))
                 ORDER BY due_at, id LIMIT ?4",
            )?;
            let found = others.query_map(params![now_ms, named, busy, other_slots], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
            for row in found {
                rows.push(row?);
            }
        }
        // Oldest first, within the overall limit.
        rows.sort();
        rows.truncate(limit);
        let mut event =
            conn.prepare_cached("SELECT body, received_at FROM events WHERE seq = ?1")?;
        let mut received = conn.prepare_cached("SELECT received_at FROM events WHERE seq = ?1")?;
        let mut due = Vec::with_capacity(rows.len());
        for (_, id, seq, plugin, attempt) in rows {
            let known = self
                .recent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .by_seq
                .get(&seq)
                .cloned();
            let (event, received_at_ms) = match known {
                Some(event) => (event, received.query_row(params![seq], |r| r.get(0))?),
                None => {
                    let (body, at): (String, i64) =
                        event.query_row(params![seq], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    (Arc::new(restore(&body)?), at)
                }
            };
            due.push(DueDelivery {
                id,
                event,
                plugin,
                attempt,
                received_at_ms,
            });
        }
        Ok(due)
    }

    fn next_due_ms(&self) -> Result<Option<i64>, JournalError> {
        let reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        Ok(reader.query_row("SELECT MIN(due_at) FROM deliveries", [], |r| r.get(0))?)
    }

    fn complete(&self, id: i64) -> Result<(), JournalError> {
        self.committed(|done| Write::Settle(Settlement::Complete(id), done))
    }

    fn retry_at(&self, id: i64, due_ms: i64, error: &str) -> Result<(), JournalError> {
        let error = error.to_string();
        self.committed(|done| Write::Settle(Settlement::RetryAt { id, due_ms, error }, done))
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

    fn pending(&self) -> Result<u64, JournalError> {
        // Count after everything queued so far is committed.
        self.committed(Write::Flush)?;
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM deliveries", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
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
        let reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        let mut query = reader.prepare_cached(
            "SELECT d.id, e.event_id,
                    coalesce(json_extract(e.body, '$.event.eventType'), json_extract(e.body, '$.event.type'), ''),
                    d.plugin, d.attempts, d.due_at, d.last_error, e.received_at
             FROM deliveries d JOIN events e ON e.seq = d.event_seq
             WHERE ?1 IS NULL OR d.plugin = ?1
             ORDER BY d.due_at, d.id LIMIT ?2",
        )?;
        let rows = query.query_map(params![plugin, limit as i64], |r| {
            Ok(PendingDelivery {
                id: r.get(0)?,
                event_id: r.get(1)?,
                event_type: r.get(2)?,
                plugin: r.get(3)?,
                attempts: r.get(4)?,
                due_at_ms: r.get(5)?,
                last_error: r.get(6)?,
                received_at_ms: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delivery_counts(&self) -> Result<Vec<(String, u64, u64)>, JournalError> {
        let reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
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
        Ok(self
            .letters(
                "WHERE ?1 IS NULL OR d.plugin = ?1",
                plugin.map(str::to_string).into(),
            )?
            .into_iter()
            .map(|(letter, _)| letter)
            .collect())
    }

    fn dead_letter_event(&self, id: i64) -> Result<Option<(DeadLetter, Value)>, JournalError> {
        let found = self
            .letters("WHERE d.id = ?1", id.into())?
            .into_iter()
            .next();
        Ok(found.map(|(letter, body)| {
            let stored: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            (letter, stored["event"].clone())
        }))
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
                "INSERT INTO deliveries (event_seq, plugin, due_at)
                 SELECT event_seq, plugin, ?2 FROM dead_letters
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
        Ok(done)
    }
}
