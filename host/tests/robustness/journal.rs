//! The journal's bad days: an outcome that cannot be recorded, counters
//! that must match the journal, a disk that fills up.

use crate::common::fort::{Extra, Fort, wait};
use crate::common::grant;
use gridlet::dispatch::{DispatchSettings, Dispatcher, Policy, Target, Targets, Verdict};
use gridlet::event::{Event, parse_event_grid};
use gridlet::ingest::Intake;
use gridlet::journal::{
    AppendCompletion, Appended, Claimed, Completion, DeadLetter, DeadLetterReason, Journal,
    JournalError, NewEvent, PendingDelivery, Replayed, Settlement, Slots, SqliteJournal,
};
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A journal whose outcomes fail to commit while `failing` is set; it
/// counts the claims asked of it.
struct Flaky {
    inner: Arc<SqliteJournal>,
    failing: std::sync::atomic::AtomicBool,
    refused: AtomicU32,
    claims: AtomicU32,
}

impl Flaky {
    /// A journal in `dir`, its outcomes failing from the start when `failing`.
    fn open(dir: &std::path::Path, failing: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::new(SqliteJournal::open(dir, false).expect("journal")),
            failing: failing.into(),
            refused: AtomicU32::new(0),
            claims: AtomicU32::new(0),
        })
    }
}

impl Journal for Flaky {
    fn append(&self, batch: Vec<NewEvent>) -> Result<Appended, JournalError> {
        self.inner.append(batch)
    }
    fn append_then(&self, batch: Vec<NewEvent>, done: AppendCompletion) {
        self.inner.append_then(batch, done)
    }
    fn settle(&self, settlement: Settlement, done: Completion) {
        if self.failing.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return done(Err(JournalError("disk full".into())));
        }
        self.inner.settle(settlement, done)
    }
    fn claim_due(
        &self,
        now: i64,
        limit: usize,
        slots: &[Slots],
        other: u32,
        busy: &[i64],
    ) -> Result<Claimed, JournalError> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        self.inner.claim_due(now, limit, slots, other, busy)
    }
    fn next_due_ms(&self, slots: &[Slots]) -> Result<Option<i64>, JournalError> {
        self.inner.next_due_ms(slots)
    }
    fn complete(&self, id: i64) -> Result<(), JournalError> {
        self.inner.complete(id)
    }
    fn retry_at(&self, id: i64, due: i64, e: &str) -> Result<(), JournalError> {
        self.inner.retry_at(id, due, e)
    }
    fn postpone(&self, id: i64, due: i64) -> Result<(), JournalError> {
        self.inner.postpone(id, due)
    }
    fn dead_letter(
        &self,
        id: i64,
        r: DeadLetterReason,
        e: &str,
        now: i64,
        attempts: u32,
    ) -> Result<(), JournalError> {
        self.inner.dead_letter(id, r, e, now, attempts)
    }
    fn expire(&self, p: &str, before: i64, now: i64) -> Result<u64, JournalError> {
        self.inner.expire(p, before, now)
    }
    fn pending(&self) -> Result<u64, JournalError> {
        self.inner.pending()
    }
    fn outstanding(&self) -> u64 {
        self.inner.outstanding()
    }
    fn check_writable(&self) -> Result<(), JournalError> {
        self.inner.check_writable()
    }
    fn deliveries(
        &self,
        p: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, JournalError> {
        self.inner.deliveries(p, limit)
    }
    fn delivery_counts(&self) -> Result<Vec<(String, u64, u64)>, JournalError> {
        self.inner.delivery_counts()
    }
    fn dead_letters(&self, p: Option<&str>) -> Result<Vec<DeadLetter>, JournalError> {
        self.inner.dead_letters(p)
    }
    fn dead_letter_event(
        &self,
        id: i64,
    ) -> Result<Option<(DeadLetter, serde_json::Value)>, JournalError> {
        self.inner.dead_letter_event(id)
    }
    fn purge(&self, ids: &[i64]) -> Result<u64, JournalError> {
        self.inner.purge(ids)
    }
    fn replay(&self, ids: &[i64], now: i64, force: bool) -> Result<Replayed, JournalError> {
        self.inner.replay(ids, now, force)
    }
}

/// The test plugins' policy.
const POLICY: Policy = Policy {
    max_attempts: 30,
    time_to_live: Duration::from_secs(3600),
    max_concurrency: 4,
    overall_concurrency: 4,
};

/// A plugin that answers retry the first time, then done; it counts its
/// attempts by number.
struct Counting {
    calls: Mutex<Vec<(String, u32)>>,
}

#[async_trait::async_trait]
impl Target for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn accepts(&self, _: &Event) -> bool {
        true
    }
    fn policy(&self) -> Policy {
        POLICY
    }
    async fn deliver(&self, event: Arc<Event>, attempt: u32) -> Verdict {
        self.calls
            .lock()
            .expect("lock")
            .push((event.id.clone(), attempt));
        if attempt == 1 {
            Verdict::Retry("first time".into())
        } else {
            Verdict::Done
        }
    }
}

struct One(Arc<Counting>);

impl Targets for One {
    fn current(&self) -> Vec<Arc<dyn Target>> {
        vec![self.0.clone() as Arc<dyn Target>]
    }
}

fn event(id: &str) -> Event {
    parse_event_grid(
        &json!({"id": id, "topic": "/ws", "subject": "s", "eventType": "T"}),
        0,
    )
    .expect("event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_that_cannot_be_recorded_is_not_attempted_again_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Flaky::open(dir.path(), true);
    let plugin = Arc::new(Counting {
        calls: Mutex::default(),
    });
    let settings = DispatchSettings {
        retry_delays: vec![Duration::from_millis(10)],
        ..DispatchSettings::default()
    };
    let d =
        Dispatcher::start(Arc::new(One(plugin.clone())), journal.clone(), settings).expect("start");
    assert_eq!(d.accept(vec![event("e1"), event("e2")]).await, Ok(2));
    // The disk is full: each outcome is tried again with backoff while the
    // claim is held, never attempted again, and claiming pauses.
    wait("outcomes refused a few times", || {
        journal.refused.load(Ordering::SeqCst) >= 6
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = plugin.calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 2, "each attempted once: {calls:?}");
    assert!(calls.iter().all(|(_, attempt)| *attempt == 1));
    // The disk has room again: the recorded retries count, attempt 2 follows.
    journal.failing.store(false, Ordering::SeqCst);
    wait("both done", || d.stats().done.load(Ordering::SeqCst) == 2).await;
    let mut calls = plugin.calls.lock().expect("lock").clone();
    calls.sort();
    assert_eq!(
        calls,
        [
            ("e1".to_string(), 1),
            ("e1".to_string(), 2),
            ("e2".to_string(), 1),
            ("e2".to_string(), 2)
        ]
    );
}

/// A plugin that is either waiting for a version (not serving) or slow.
struct Still {
    name: &'static str,
    serving: bool,
    takes: Duration,
}

#[async_trait::async_trait]
impl Target for Still {
    fn name(&self) -> &str {
        self.name
    }
    fn accepts(&self, _: &Event) -> bool {
        true
    }
    fn policy(&self) -> Policy {
        POLICY
    }
    fn serving(&self) -> bool {
        self.serving
    }
    async fn deliver(&self, _: Arc<Event>, _: u32) -> Verdict {
        tokio::time::sleep(self.takes).await;
        Verdict::Done
    }
}

struct These(Vec<Arc<dyn Target>>);

impl Targets for These {
    fn current(&self) -> Vec<Arc<dyn Target>> {
        self.0.clone()
    }
}

/// Deliveries nothing can claim now (kept for a plugin waiting for a
/// version, or running long) do not have dispatch look again every
/// millisecond: it waits for a wake-up or for what it could claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_nothing_can_claim_do_not_make_dispatch_spin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Flaky::open(dir.path(), false);
    let targets: Vec<Arc<dyn Target>> = vec![
        Arc::new(Still {
            name: "waiting",
            serving: false,
            takes: Duration::ZERO,
        }),
        Arc::new(Still {
            name: "slow",
            serving: true,
            takes: Duration::from_secs(3),
        }),
    ];
    let d = Dispatcher::start(
        Arc::new(These(targets)),
        journal.clone(),
        DispatchSettings::default(),
    )
    .expect("start");
    assert_eq!(d.accept(vec![event("e1")]).await, Ok(2));
    // The slow delivery starts; the waiting one stays.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = journal.claims.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let claims = journal.claims.load(Ordering::SeqCst) - before;
    // Looking every millisecond made ≈ 1,000; the sweep for removed
    // plugins alone asks once a second.
    assert!(claims <= 10, "{claims} claims in a second");
    assert_eq!(journal.pending().expect("pending"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pending_count_equals_the_journal_after_many_mixed_outcomes() {
    let fort = Fort::start(
        vec![
            Extra::new(
                "refuser",
                "hostile",
                "",
                grant(&[("behaviour", "refuse")], &[]),
            ),
            Extra::new(
                "trapper",
                "hostile",
                "[retry]\nmaxDeliveryAttempts = 2\n",
                grant(&[("behaviour", "trap")], &[]),
            ),
        ],
        |_| {},
    )
    .await;
    // Done (good), rejected (refuser), retried then dead (trapper), and
    // duplicates, over many requests.
    for i in 0..300 {
        let id = format!("mixed-{}", i % 250);
        assert_eq!(fort.post(&id).await, 200);
    }
    let journal = fort.server.dispatcher.journal().clone();
    let letters = journal.dead_letters(None).expect("list");
    let ids: Vec<i64> = letters.iter().take(20).map(|l| l.id).collect();
    fort.server
        .dispatcher
        .replay(ids, false)
        .await
        .expect("replay");
    wait("everything settled", || journal.outstanding() == 0).await;
    let db = fort.dir.path().join("state/journal.sqlite3");
    let conn = rusqlite::Connection::open(db).expect("open");
    let counted: i64 = conn
        .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
        .expect("count");
    assert_eq!(counted, 0);
    assert_eq!(journal.outstanding(), journal.pending().expect("pending"));
    // And while deliveries are pending, the count follows them exactly.
    fort.good_sink.answer(503);
    for i in 0..40 {
        assert_eq!(fort.post(&format!("held-{i}")).await, 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(journal.outstanding(), journal.pending().expect("pending"));
    assert_eq!(journal.outstanding(), 40);
}

#[tokio::test]
async fn readyz_says_not_ready_when_the_disk_is_nearly_full() {
    // No test can fill the machine's disk; it can ask for more room than
    // any disk has, which is the same to readiness.
    let fort = Fort::start(vec![], |s| s.min_free_disk_bytes = u64::MAX).await;
    let url = format!("http://{}/readyz", fort.server.addr);
    let started = std::time::Instant::now();
    let body = loop {
        let r = fort.client.get(&url).send().await.expect("readyz");
        let code = r.status().as_u16();
        let body: serde_json::Value = r.json().await.expect("json");
        if code == 503 && body["checks"]["journal"] == "writable" {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["checks"]["disk"], "full", "{body}");
    assert_eq!(body["status"], "not ready");
}
