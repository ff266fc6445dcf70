//! The writer thread: every write goes through it, and it commits
//! everything queued at that moment in one transaction (group commit):
//! appends from concurrent webhook requests, outcomes from concurrent
//! deliveries and plugins' key-value writes share one fsync instead of
//! queueing for one each. Each write is answered once committed.
//! Key-value writes share a group only up to a byte budget; the rest wait
//! for the next group, so webhook commits never queue behind a plugin
//! writing large values in a loop.

use super::super::{Appended, Completion, JournalError, NewEvent, Settlement, now_ms};
use super::kv::{self, KvDone, KvQuota, KvRefusal, KvWrite, Usage};
use super::rows::{PURGE, expire, first_received_at_or_after, insert, settle};
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

#[cfg(test)]
mod tests {
    use super::{CLOCK_STEP_FOLLOWED, stamp};

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
