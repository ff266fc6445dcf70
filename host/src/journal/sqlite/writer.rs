//! The writer thread: every write goes through it, and it commits
//! everything queued at that moment in one transaction (group commit):
//! appends from concurrent webhook requests, outcomes from concurrent
//! deliveries and plugins' key-value writes share one fsync instead of
//! queueing for one each. Each write is answered once committed.
//! Key-value writes share a group only up to a byte budget; the rest wait
//! for the next group, so webhook commits never queue behind a plugin
//! writing large values in a loop.

use super::super::{
    Appended, Completion, JournalError, KEPT_ERRORS, NewEvent, Settlement, kept_error, now_ms,
};
use super::kv::{self, KvDone, KvQuota, KvRefusal, KvWrite, Usage};
use super::stored::Recent;
use crate::event::Event;
use rusqlite::{Connection, params};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, mpsc};

/// How long an event id is remembered for dedup: Event Grid's longest TTL.
pub(super) const DEDUP_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// How far back the clock may step and stamps still not go back with it
/// (NTP's adjustments; see `Writer::stamp`).
const CLOCK_STEP_FOLLOWED: i64 = 60 * 1000;
/// Most writes folded into one transaction.
const MAX_GROUP: usize = 256;
/// Most bytes of key-value values in one transaction (at least one write
/// is always taken, however large).
const KV_BYTES_PER_GROUP: usize = 256 * 1024;

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

/// Key-value writes wait in `held` (their byte budget decides when they
/// join a group); everything else joins the next group.
fn sort(write: Write, group: &mut Vec<Write>, held: &mut VecDeque<Write>) {
    match write {
        Write::Kv(..) => held.push_back(write),
        other => group.push(other),
    }
}

/// What the writer thread keeps between groups.
pub(super) struct Writer {
    pub(super) conn: Arc<Mutex<Connection>>,
    pub(super) recent: Arc<Mutex<Recent>>,
    pub(super) usage: HashMap<String, Usage>,
    pub(super) settings: super::JournalSettings,
    /// Set while commits fail; cleared by the next that succeeds.
    pub(super) failing: Arc<std::sync::atomic::AtomicBool>,
    /// Deliveries in the table, kept exact from every commit's changes.
    pub(super) outstanding: Arc<std::sync::atomic::AtomicI64>,
    /// The latest time a group was stamped with: events' `received_at`
    /// never goes back as `seq` rises, even when the clock does, so the
    /// purge finds its cut-off by `seq` (no index on `received_at`).
    pub(super) last_now: i64,
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
        // Key-value writes not yet taken into a group, in arrival order.
        let mut held: VecDeque<Write> = VecDeque::new();
        loop {
            let mut writes = Vec::new();
            if held.is_empty() {
                match rx.recv() {
                    Ok(first) => sort(first, &mut writes, &mut held),
                    Err(_) => return,
                }
            }
            while writes.len() + held.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(write) => sort(write, &mut writes, &mut held),
                    Err(_) => break,
                }
            }
            let mut budget = KV_BYTES_PER_GROUP;
            while let Some(Write::Kv(op, ..)) = held.front() {
                let bytes = op.bytes();
                if bytes > budget && budget < KV_BYTES_PER_GROUP {
                    break;
                }
                budget = budget.saturating_sub(bytes);
                writes.extend(held.pop_front());
            }
            let now = stamp(self.last_now, now_ms());
            if now < self.last_now {
                tracing::warn!(
                    back_ms = self.last_now - now,
                    "the clock stepped back; the journal follows it"
                );
            }
            self.last_now = now;
            let conn = self.conn.clone();
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            let result = self.group(&mut conn, &writes, now);
            self.answer(writes, result, now);
            if now - last_purge > self.settings.purge_every.as_millis() as i64 {
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
                    let result = kv::write(&tx, op, *quota, &self.usage, &mut group.usage);
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

    /// Drop what only dedup or nobody needs any more: dead letters past
    /// their retention; the text of events whose deliveries are all over
    /// (only the dedup key stays); events past the dedup window that
    /// nothing refers to. Every step uses an index.
    fn purge(&self, conn: &Connection, now: i64) -> Result<(), JournalError> {
        let retention = self.settings.dead_letter_retention.as_millis() as i64;
        let shed_after = self.settings.shed_after.as_millis() as i64;
        let [dead_letters, shed, events] = PURGE;
        conn.execute(dead_letters, params![now - retention])?;
        conn.execute(shed, params![now - shed_after])?;
        let first_kept = first_received_at_or_after(conn, now - DEDUP_WINDOW_MS)?;
        conn.execute(events, params![first_kept])?;
        Ok(())
    }
}

/// The time a group is stamped with: the clock's `wall`, but never behind
/// the `last` group's unless the clock stepped back further than
/// [`CLOCK_STEP_FOLLOWED`] (then it was wrong before, and following it
/// beats freezing every stamp until it catches up).
fn stamp(last: i64, wall: i64) -> i64 {
    if wall < last - CLOCK_STEP_FOLLOWED {
        wall
    } else {
        last.max(wall)
    }
}

/// The `seq` of the first event received at or after `cutoff` (past the
/// last event's when there is none), by binary search over `seq`: the
/// writer stamps `received_at` so that it never goes back as `seq` rises.
/// A few dozen primary-key lookups instead of an index every event pays
/// for. (Journals written before version 5 may hold a clock's step back;
/// around one, events are purged up to that step early or late.)
pub(super) fn first_received_at_or_after(
    conn: &Connection,
    cutoff: i64,
) -> Result<i64, JournalError> {
    let (first, last): (Option<i64>, Option<i64>) =
        conn.query_row("SELECT MIN(seq), MAX(seq) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let (Some(mut low), Some(last)) = (first, last) else {
        return Ok(0);
    };
    let mut at = conn.prepare_cached(
        "SELECT seq, received_at FROM events WHERE seq >= ?1 ORDER BY seq LIMIT 1",
    )?;
    // The answer is in [low, high]; high = last + 1: every event is older.
    let mut high = last + 1;
    while low < high {
        let middle = low + (high - low) / 2;
        let (seq, received_at): (i64, i64) =
            at.query_row(params![middle], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if received_at < cutoff {
            low = seq + 1;
        } else {
            high = middle;
        }
    }
    Ok(low)
}

/// The purge's statements, each with its cut-off as `?1`: dead letters past
/// retention and the text of finished events by time; events past the
/// dedup window that nothing refers to by `seq` (the first one kept).
const PURGE: [&str; 3] = [
    "DELETE FROM dead_letters WHERE dead_at < ?1",
    "UPDATE events SET body = '' WHERE body <> '' AND received_at < ?1
     AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = events.seq)
     AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE event_seq = events.seq)",
    "DELETE FROM events WHERE seq < ?1
     AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = events.seq)
     AND NOT EXISTS (SELECT 1 FROM dead_letters WHERE event_seq = events.seq)",
];

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
         ON CONFLICT (event_id, topic_key) DO NOTHING",
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
            e.schema.as_str(),
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

/// Dead-letter `plugin`'s deliveries whose time-to-live started before
/// `before` (see [`DueDelivery::ttl_from_ms`](super::super::DueDelivery)).
fn expire(
    tx: &rusqlite::Transaction<'_>,
    plugin: &str,
    before: i64,
    now: i64,
) -> Result<u64, JournalError> {
    tx.prepare_cached(&format!(
        "INSERT INTO dead_letters (event_seq, plugin, reason, attempts, last_error, dead_at, errors)
         SELECT d.event_seq, d.plugin, 'TimeToLiveExceeded', d.attempts, ?4, ?3, {}
         FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.plugin = ?1 AND coalesce(d.ttl_from, e.received_at) < ?2",
        errors_with("d.errors", "?4")
    ))?
    .execute(params![
        plugin,
        before,
        now,
        "the event outlived its time-to-live while no version of the plugin served"
    ])?;
    let n = tx
        .prepare_cached(
            "DELETE FROM deliveries AS d WHERE plugin = ?1
             AND coalesce(ttl_from, (SELECT received_at FROM events WHERE seq = d.event_seq)) < ?2",
        )?
        .execute(params![plugin, before])?;
    Ok(n as u64)
}

/// SQL for the JSON array `column` with `error` appended, the oldest
/// dropped past [`KEPT_ERRORS`].
fn errors_with(column: &str, error: &str) -> String {
    format!(
        "CASE WHEN json_array_length({column}) >= {KEPT_ERRORS}
              THEN json_insert(json_remove({column}, '$[0]'), '$[#]', {error})
              ELSE json_insert({column}, '$[#]', {error}) END"
    )
}

/// Record one outcome; the number of deliveries it ended (0 or 1).
fn settle(tx: &rusqlite::Transaction<'_>, settlement: &Settlement) -> Result<i64, JournalError> {
    let ended = match settlement {
        Settlement::Complete(id) => tx
            .prepare_cached("DELETE FROM deliveries WHERE id = ?1")?
            .execute(params![id])?,
        Settlement::RetryAt { id, due_ms, error } => {
            tx.prepare_cached(&format!(
                "UPDATE deliveries SET attempts = attempts + 1, due_at = ?2, last_error = ?3,
                 errors = {} WHERE id = ?1",
                errors_with("errors", "?4")
            ))?
            .execute(params![id, due_ms, error, kept_error(error)])?;
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
            tx.prepare_cached(&format!(
                "INSERT INTO dead_letters
                   (event_seq, plugin, reason, attempts, last_error, dead_at, errors)
                 SELECT event_seq, plugin, ?2, ?5, ?3, ?4, {} FROM deliveries WHERE id = ?1",
                errors_with("errors", "?6")
            ))?
            .execute(params![
                id,
                reason.as_str(),
                error,
                at_ms,
                attempts,
                kept_error(error)
            ])?;
            tx.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?
                .execute(params![id])?
        }
    };
    Ok(ended as i64)
}

#[cfg(test)]
mod tests {
    use super::{CLOCK_STEP_FOLLOWED, PURGE, first_received_at_or_after, stamp};
    use rusqlite::{Connection, params};

    /// A purge over a large journal must not read every row: each table it
    /// touches is searched through an index, never scanned.
    #[test]
    fn every_purge_statement_searches_an_index() {
        let mut conn = Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&mut conn).expect("schema");
        for statement in PURGE {
            let mut plan = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
                .expect("plan");
            let steps: Vec<String> = plan
                .query_map([0i64], |row| row.get::<_, String>(3))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("steps");
            assert!(!steps.is_empty(), "{statement}");
            for step in &steps {
                assert!(
                    !step.starts_with("SCAN"),
                    "{statement}\nscans a table: {steps:?}"
                );
            }
        }
    }

    /// The purge's cut-off by `seq` is the first event at or after the
    /// time, whatever the gaps earlier purges left in `seq`.
    #[test]
    fn the_first_event_at_or_after_a_time_is_found_by_seq() {
        let mut conn = Connection::open_in_memory().expect("open");
        super::super::schema::migrate(&mut conn).expect("schema");
        assert_eq!(first_received_at_or_after(&conn, 100).expect("empty"), 0);
        // seq 10, 13, 16, ... received at 1000, 1000, 1010, 1010, 1020, ...
        let events: Vec<(i64, i64)> = (0..40).map(|i| (10 + 3 * i, 1000 + 10 * (i / 2))).collect();
        for (seq, at) in &events {
            conn.execute(
                "INSERT INTO events (seq, topic_key, event_id, body, received_at)
                 VALUES (?1, 't', ?1, '', ?2)",
                params![seq, at],
            )
            .expect("event");
        }
        for cutoff in [0, 999, 1000, 1001, 1010, 1055, 1190, 1191, 5000] {
            let found = first_received_at_or_after(&conn, cutoff).expect("search");
            // What a scan finds: every event before the cut-off is older.
            let older = events.iter().filter(|(_, at)| *at < cutoff).count();
            let kept = events.iter().filter(|(seq, _)| *seq >= found).count();
            assert_eq!(events.len() - kept, older, "cut-off {cutoff}: seq {found}");
        }
    }

    #[test]
    fn stamps_never_go_back_with_a_small_clock_step_and_follow_a_large_one() {
        assert_eq!(stamp(0, 5_000), 5_000);
        assert_eq!(stamp(5_000, 6_000), 6_000);
        // NTP slewing or stepping by seconds: the stamp holds.
        assert_eq!(stamp(6_000, 4_000), 6_000);
        let far = 6_000 + CLOCK_STEP_FOLLOWED + 1;
        // A clock set a day ahead and put right: followed.
        assert_eq!(stamp(far + 86_400_000, far), far);
    }
}
