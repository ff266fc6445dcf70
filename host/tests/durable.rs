//! Durable delivery with a compressed retry schedule: retries, dead letters
//! (attempts, TTL, reject, plugin gone), replay, dedup, recovery, graceful
//! shutdown, isolation between plugins, and plugin state across restarts.
//! Every delivery test runs on both journals: the embedded SQLite one
//! (`sqlite::…`) and the cluster one on a real `nats-server` with JetStream
//! (`jetstream::…`), one suite.

// Only part of it is used here (one server, no cluster).
#[allow(dead_code)]
#[path = "common/nats.rs"]
mod nats;

use gridlet::dispatch::{DispatchSettings, Dispatcher, Policy, Target, Targets, Verdict};
use gridlet::event::{Event, parse_event_grid};
use gridlet::ingest::Intake;
use gridlet::journal::{
    ClusterSettings, JetStreamJournal, Journal, NewEvent, Slots, SqliteJournal, now_ms,
};
use gridlet::runtime::keyvalue::KvQuota;
use gridlet::runtime::{JetStreamKeyValue, JournalKeyValue, KeyValue};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A plugin stand-in that answers from a script and records its calls.
struct Scripted {
    name: String,
    policy: Policy,
    answer: Box<dyn Fn(u32) -> Verdict + Send + Sync>,
    delay: Duration,
    calls: Mutex<Vec<(String, u32)>>,
}

impl Scripted {
    fn new(
        name: &str,
        max_attempts: u32,
        answer: impl Fn(u32) -> Verdict + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            policy: Policy {
                max_attempts,
                time_to_live: Duration::from_secs(3600),
                max_concurrency: 4,
                overall_concurrency: 4,
            },
            answer: Box::new(answer),
            delay: Duration::ZERO,
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<(String, u32)> {
        self.calls.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl Target for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    fn accepts(&self, _: &Event) -> bool {
        true
    }
    fn policy(&self) -> Policy {
        self.policy
    }
    async fn deliver(&self, event: Arc<Event>, attempt: u32) -> Verdict {
        self.calls
            .lock()
            .expect("lock")
            .push((event.id.clone(), attempt));
        tokio::time::sleep(self.delay).await;
        (self.answer)(attempt)
    }
}

struct Set(Vec<Arc<Scripted>>);

impl Targets for Set {
    fn current(&self) -> Vec<Arc<dyn Target>> {
        self.0
            .iter()
            .map(|t| t.clone() as Arc<dyn Target>)
            .collect()
    }
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            parse_event_grid(
                &json!({"id": format!("evt-{i}"), "topic": "/ws", "subject": "s", "eventType": "Custom.Thing", "data": {"i": i}}),
                i,
            )
            .expect("event")
        })
        .collect()
}

fn settings() -> DispatchSettings {
    DispatchSettings {
        retry_delays: vec![Duration::from_millis(5), Duration::from_millis(10)],
        shutdown_grace: Duration::from_secs(5),
        ..DispatchSettings::default()
    }
}

fn journal(dir: &tempfile::TempDir) -> Arc<SqliteJournal> {
    Arc::new(SqliteJournal::open(dir.path(), false).expect("journal"))
}

/// Where a test's journal lives; opening it again is a restart.
enum Backend {
    Sqlite(tempfile::TempDir),
    JetStream(nats::NatsServer),
}

impl Backend {
    fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().expect("tempdir"))
    }

    fn jetstream() -> Self {
        Self::JetStream(nats::NatsServer::start())
    }

    fn open(&self) -> Arc<dyn Journal> {
        self.open_with_state().0
    }

    /// The journal and the plugin state beside it, as `gridlet serve`
    /// pairs them.
    fn open_with_state(&self) -> (Arc<dyn Journal>, Arc<dyn KeyValue>) {
        match self {
            Self::Sqlite(dir) => {
                let journal = journal(dir);
                (journal.clone(), Arc::new(JournalKeyValue(journal)))
            }
            Self::JetStream(server) => {
                let journal = JetStreamJournal::connect(ClusterSettings {
                    urls: vec![server.url()],
                    // A host that dies holding deliveries gives them up
                    // after this (the crash test waits for it).
                    ack_wait: Duration::from_secs(1),
                    // One host: a plugin it does not know is gone (the
                    // dead-letter test expects it at once, as on SQLite).
                    unknown_plugin_grace: Duration::ZERO,
                    ..ClusterSettings::default()
                })
                .expect("jetstream journal");
                let (js, replicas) = journal.jetstream();
                (
                    Arc::new(journal),
                    Arc::new(JetStreamKeyValue::new(js, replicas)),
                )
            }
        }
    }
}

crate::on_each_backend!(
    retries_follow_the_schedule_until_the_plugin_succeeds,
    dead_letters_for_attempts_reject_ttl_and_missing_plugins_then_replay,
    one_failing_plugin_neither_delays_nor_repeats_another,
    duplicates_are_acknowledged_and_not_delivered_again,
    claimed_deliveries_resume_after_a_crash,
    shutdown_lets_running_deliveries_finish_and_leaves_the_rest_pending,
    claims_outnumber_max_concurrency_but_no_more_run_at_once,
    a_journal_that_cannot_commit_means_503_and_nothing_delivered,
    plugin_state_survives_a_restart_and_stays_in_its_namespace,
    a_dead_letter_keeps_each_attempts_error_the_latest_twenty,
    a_replayed_dead_letter_has_a_whole_time_to_live_of_its_own,
    the_last_hours_outcomes_are_sampled_for_the_console,
    a_purged_dead_letters_id_is_never_given_to_another,
);

/// Wait until no delivery is left in the journal.
async fn drained(journal: &dyn Journal) {
    let started = Instant::now();
    while journal.pending().expect("pending") > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "deliveries did not finish"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn retries_follow_the_schedule_until_the_plugin_succeeds(backend: Backend) {
    let journal = backend.open();
    let flaky = Scripted::new("flaky", 30, |attempt| {
        if attempt < 3 {
            Verdict::Retry(format!("not yet ({attempt})"))
        } else {
            Verdict::Done
        }
    });
    let d = Dispatcher::start(
        Arc::new(Set(vec![flaky.clone()])),
        journal.clone(),
        settings(),
    )
    .expect("start");
    assert_eq!(d.accept(events(1)).await, Ok(1));
    drained(journal.as_ref()).await;
    assert_eq!(
        flaky.calls(),
        vec![
            ("evt-0".into(), 1),
            ("evt-0".into(), 2),
            ("evt-0".into(), 3)
        ]
    );
    // Counters move once the dispatcher hears the commit, a moment after it.
    let started = Instant::now();
    while d.stats().finished() < 1 && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(d.stats().retry.load(Ordering::SeqCst), 2);
    assert_eq!(d.stats().done.load(Ordering::SeqCst), 1);
    assert!(journal.dead_letters(None).expect("list").is_empty());
}

async fn dead_letters_for_attempts_reject_ttl_and_missing_plugins_then_replay(backend: Backend) {
    let journal = backend.open();
    let failing = Scripted::new("failing", 3, |attempt| {
        Verdict::Retry(format!("service down ({attempt})"))
    });
    let rejecting = Scripted::new("rejecting", 30, |_| Verdict::DeadLetter("bad event".into()));
    let mut short = Scripted::new("short-lived", 30, |_| Verdict::Retry("slow".into()));
    Arc::get_mut(&mut short)
        .expect("unique")
        .policy
        .time_to_live = Duration::from_millis(1);
    let d = Dispatcher::start(
        Arc::new(Set(vec![failing.clone(), rejecting.clone(), short.clone()])),
        journal.clone(),
        DispatchSettings {
            retry_delays: vec![Duration::from_millis(20)],
            ..settings()
        },
    )
    .expect("start");
    assert_eq!(d.accept(events(1)).await, Ok(3));
    // A delivery for a plugin that is gone.
    journal
        .append(vec![NewEvent {
            event: Arc::new(events(2).remove(1)),
            plugins: vec!["removed".into()],
        }])
        .expect("append");
    drained(journal.as_ref()).await;

    assert_eq!(failing.calls().len(), 3, "max attempts");
    assert_eq!(rejecting.calls().len(), 1, "a reject is final");
    assert!(short.calls().len() <= 1, "the TTL stops further attempts");
    let mut letters = journal.dead_letters(None).expect("list");
    letters.sort_by(|a, b| a.plugin.cmp(&b.plugin));
    let summary: Vec<(&str, &str, u32, &str)> = letters
        .iter()
        .map(|l| {
            (
                l.plugin.as_str(),
                l.reason.as_str(),
                l.delivery_attempts,
                l.event_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary[0],
        ("failing", "MaxDeliveryAttemptsExceeded", 3, "evt-0")
    );
    assert_eq!(summary[1], ("rejecting", "Rejected", 1, "evt-0"));
    assert_eq!(
        (summary[2].0, summary[2].1, summary[2].3),
        ("removed", "PluginNotFound", "evt-1")
    );
    assert_eq!(
        (summary[3].0, summary[3].1),
        ("short-lived", "TimeToLiveExceeded")
    );
    assert_eq!(letters[0].last_error, "service down (3)");
    assert_eq!(letters[1].last_error, "bad event");
    assert_eq!(letters[2].last_error, "plugin `removed` is not loaded");
    // Each attempt's error, in order.
    assert_eq!(
        letters[0].errors,
        ["service down (1)", "service down (2)", "service down (3)"]
    );
    assert_eq!(letters[1].errors, ["bad event"]);
    assert_eq!(letters[2].errors, ["plugin `removed` is not loaded"]);
    assert!(
        letters
            .iter()
            .all(|l| l.replayed_ms.is_none() && l.topic == "/ws")
    );

    // Replay makes a new delivery and marks the dead letter.
    let rejected = letters[1].id;
    let replayed = d.replay(vec![rejected], false).await.expect("replay");
    assert_eq!((replayed.replayed, replayed.skipped), (1, 0));
    drained(journal.as_ref()).await;
    assert_eq!(rejecting.calls().len(), 2, "replayed once");
    let after = journal.dead_letters(Some("rejecting")).expect("list");
    assert!(
        after
            .iter()
            .any(|l| l.id == rejected && l.replayed_ms.is_some())
    );
    // Replaying it again delivers nothing; `force` does.
    let again = d.replay(vec![rejected], false).await.expect("replay");
    assert_eq!((again.replayed, again.skipped), (0, 1));
    drained(journal.as_ref()).await;
    assert_eq!(rejecting.calls().len(), 2, "not replayed twice");
    let forced = d.replay(vec![rejected], true).await.expect("replay");
    assert_eq!((forced.replayed, forced.skipped), (1, 0));
    drained(journal.as_ref()).await;
    assert_eq!(rejecting.calls().len(), 3, "replayed again when forced");
}

/// An id an operator saw stays that letter's: once it is purged, a replay
/// or purge by it reaches nothing, not a newer letter that took its place.
async fn a_purged_dead_letters_id_is_never_given_to_another(backend: Backend) {
    let rejecting = Scripted::new("rejecting", 30, |_| Verdict::DeadLetter("no".into()));
    // Opening the journal again is a restart.
    let start = || {
        let journal = backend.open();
        let targets = Arc::new(Set(vec![rejecting.clone()]));
        let d = Dispatcher::start(targets, journal.clone(), settings()).expect("start");
        (journal, d)
    };
    let mut seen = Vec::new();
    for round in 0..2 {
        let (journal, d) = start();
        let mut batch = events(round + 1);
        assert_eq!(d.accept(vec![batch.remove(round)]).await, Ok(1));
        drained(journal.as_ref()).await;
        let letters = journal.dead_letters(None).expect("list");
        assert_eq!(letters.len(), 1, "round {round}: {letters:?}");
        let id = letters[0].id;
        assert!(!seen.contains(&id), "id {id} given again after {seen:?}");
        // The newest (and only) letter purged, as an operator would.
        assert_eq!(journal.purge(&[id]).expect("purge"), 1);
        let replayed = d.replay(vec![id], true).await.expect("replay");
        assert_eq!((replayed.replayed, replayed.skipped), (0, 0));
        seen.push(id);
        d.shutdown().await;
    }
    // And within one run: purge the newest, the next letter is newer still.
    let (journal, d) = start();
    let mut batch = events(4);
    assert_eq!(d.accept(vec![batch.remove(2)]).await, Ok(1));
    drained(journal.as_ref()).await;
    let first = journal.dead_letters(None).expect("list")[0].id;
    assert_eq!(journal.purge(&[first]).expect("purge"), 1);
    assert_eq!(d.accept(vec![batch.remove(2)]).await, Ok(1));
    drained(journal.as_ref()).await;
    let second = journal.dead_letters(None).expect("list")[0].id;
    assert!(
        second > first && !seen.contains(&second),
        "{second} after {first}, {seen:?}"
    );
    d.shutdown().await;
}

/// The outcome counters are sampled every step from the start, so the
/// console can chart what happened before it opened.
async fn the_last_hours_outcomes_are_sampled_for_the_console(backend: Backend) {
    let journal = backend.open();
    let ok = Scripted::new("ok", 30, |_| Verdict::Done);
    let rejecting = Scripted::new("rejecting", 30, |_| Verdict::DeadLetter("no".into()));
    let step = Duration::from_millis(20);
    let d = Dispatcher::start(
        Arc::new(Set(vec![ok.clone(), rejecting.clone()])),
        journal.clone(),
        DispatchSettings {
            history_step: step,
            ..settings()
        },
    )
    .expect("start");
    assert_eq!(d.accept(events(3)).await, Ok(6));
    drained(journal.as_ref()).await;
    let started = Instant::now();
    let samples = loop {
        let (every, samples) = d.history();
        assert_eq!(every, step);
        let last = samples.last().copied();
        if last.is_some_and(|s| s.done == 3 && s.dead_lettered == 3) {
            break samples;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never sampled: {last:?}"
        );
        tokio::time::sleep(step).await;
    };
    let first = samples[0];
    assert_eq!(
        (first.done, first.retried, first.dead_lettered),
        (0, 0, 0),
        "the first sample is taken at start"
    );
    assert!(
        samples.windows(2).all(|w| w[0].at_ms <= w[1].at_ms
            && w[0].done <= w[1].done
            && w[0].dead_lettered <= w[1].dead_lettered),
        "in time order, counters never going back: {samples:?}"
    );
}

/// An operator replays a dead letter after fixing the plugin, long after
/// the event's time-to-live ran out: the replay is a new delivery with a
/// time-to-live from the replay, not dead-lettered again at once.
async fn a_replayed_dead_letter_has_a_whole_time_to_live_of_its_own(backend: Backend) {
    let journal = backend.open();
    let fixed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fix = fixed.clone();
    let mut broken = Scripted::new("broken", 30, move |_| {
        if fix.load(Ordering::SeqCst) {
            Verdict::Done
        } else {
            Verdict::Retry("a bug".into())
        }
    });
    let ttl = Duration::from_millis(400);
    Arc::get_mut(&mut broken)
        .expect("unique")
        .policy
        .time_to_live = ttl;
    let d = Dispatcher::start(
        Arc::new(Set(vec![broken.clone()])),
        journal.clone(),
        DispatchSettings {
            // The retry is due after the time-to-live.
            retry_delays: vec![Duration::from_millis(600)],
            ..settings()
        },
    )
    .expect("start");
    assert_eq!(d.accept(events(1)).await, Ok(1));
    drained(journal.as_ref()).await;
    let letters = journal.dead_letters(None).expect("list");
    assert_eq!(
        letters
            .iter()
            .map(|l| (l.reason.as_str(), l.delivery_attempts))
            .collect::<Vec<_>>(),
        [("TimeToLiveExceeded", 1)]
    );
    // Fixed later, then replayed: well past the event's time-to-live.
    tokio::time::sleep(ttl).await;
    fixed.store(true, Ordering::SeqCst);
    let replayed = d.replay(vec![letters[0].id], false).await.expect("replay");
    assert_eq!((replayed.replayed, replayed.skipped), (1, 0));
    drained(journal.as_ref()).await;
    assert_eq!(
        broken.calls(),
        [("evt-0".to_string(), 1), ("evt-0".to_string(), 1)],
        "the replay was attempted, as a first attempt"
    );
    let after = journal.dead_letters(None).expect("list");
    assert_eq!(after.len(), 1, "not dead-lettered again: {after:?}");
    assert!(after[0].replayed_ms.is_some());
}

async fn one_failing_plugin_neither_delays_nor_repeats_another(backend: Backend) {
    let journal = backend.open();
    let good = Scripted::new("good", 30, |_| Verdict::Done);
    let bad = Scripted::new("bad", 5, |_| Verdict::Retry("always failing".into()));
    let d = Dispatcher::start(
        Arc::new(Set(vec![good.clone(), bad.clone()])),
        journal.clone(),
        settings(),
    )
    .expect("start");
    for chunk in events(40).chunks(8) {
        assert_eq!(d.accept(chunk.to_vec()).await, Ok(16));
    }
    drained(journal.as_ref()).await;
    let mut ids: Vec<String> = good
        .calls()
        .into_iter()
        .map(|(id, attempt)| {
            assert_eq!(attempt, 1);
            id
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40);
    assert_eq!(
        good.calls().len(),
        40,
        "each event exactly once to the good plugin"
    );
    assert_eq!(bad.calls().len(), 200, "5 attempts each for the bad one");
    assert_eq!(journal.dead_letters(Some("bad")).expect("list").len(), 40);
}

async fn duplicates_are_acknowledged_and_not_delivered_again(backend: Backend) {
    let journal = backend.open();
    let p = Scripted::new("p", 30, |_| Verdict::Done);
    let d = Dispatcher::start(Arc::new(Set(vec![p.clone()])), journal.clone(), settings())
        .expect("start");
    assert_eq!(d.accept(events(3)).await, Ok(3));
    assert_eq!(d.accept(events(3)).await, Ok(0), "same topic and ids");
    // Topics compare without case, as Event Grid's resource ids do.
    let mut shouting = events(1);
    shouting[0].topic = "/WS".into();
    assert_eq!(d.accept(shouting).await, Ok(0));
    drained(journal.as_ref()).await;
    assert_eq!(p.calls().len(), 3);
    assert_eq!(d.stats().duplicates.load(Ordering::SeqCst), 4);
}

async fn claimed_deliveries_resume_after_a_crash(backend: Backend) {
    {
        let journal = backend.open();
        journal
            .append(
                events(5)
                    .into_iter()
                    .map(|event| NewEvent {
                        event: Arc::new(event),
                        plugins: vec!["p".into()],
                    })
                    .collect(),
            )
            .expect("append");
        // Two attempts were running when the process died.
        assert_eq!(
            journal
                .claim_due(now_ms(), 2, &[], 16, &[])
                .expect("claim")
                .due
                .len(),
            2
        );
    }
    let journal = backend.open();
    let p = Scripted::new("p", 30, |_| Verdict::Done);
    let _d = Dispatcher::start(Arc::new(Set(vec![p.clone()])), journal.clone(), settings())
        .expect("start");
    drained(journal.as_ref()).await;
    let mut calls = p.calls();
    calls.sort();
    assert_eq!(calls.len(), 5, "every delivery, once");
    assert!(
        calls.iter().all(|(_, attempt)| *attempt == 1),
        "an interrupted attempt does not count: {calls:?}"
    );
}

async fn shutdown_lets_running_deliveries_finish_and_leaves_the_rest_pending(backend: Backend) {
    let journal = backend.open();
    let mut slow = Scripted::new("slow", 30, |_| Verdict::Done);
    Arc::get_mut(&mut slow).expect("unique").delay = Duration::from_millis(300);
    Arc::get_mut(&mut slow)
        .expect("unique")
        .policy
        .max_concurrency = 1;
    let d = Dispatcher::start(
        Arc::new(Set(vec![slow.clone()])),
        journal.clone(),
        settings(),
    )
    .expect("start");
    assert_eq!(d.accept(events(3)).await, Ok(3));
    while slow.calls().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    d.shutdown().await;
    assert_eq!(
        slow.calls().len(),
        1,
        "no new delivery starts during shutdown"
    );
    assert_eq!(
        journal.pending().expect("pending"),
        2,
        "the running one finished; two wait for the next start"
    );
}

/// A plugin stand-in that records how many of its deliveries run at once.
struct Crowded {
    policy: Policy,
    now: std::sync::atomic::AtomicU32,
    peak: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl Target for Crowded {
    fn name(&self) -> &str {
        "crowded"
    }
    fn accepts(&self, _: &Event) -> bool {
        true
    }
    fn policy(&self) -> Policy {
        self.policy
    }
    async fn deliver(&self, _: Arc<Event>, _: u32) -> Verdict {
        let running = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(running, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Verdict::Done
    }
}

struct One(Arc<Crowded>);

impl Targets for One {
    fn current(&self) -> Vec<Arc<dyn Target>> {
        vec![self.0.clone() as Arc<dyn Target>]
    }
}

async fn claims_outnumber_max_concurrency_but_no_more_run_at_once(backend: Backend) {
    let journal = backend.open();
    let plugin = Arc::new(Crowded {
        policy: Policy {
            max_attempts: 3,
            time_to_live: Duration::from_secs(3600),
            max_concurrency: 3,
            overall_concurrency: 6,
        },
        now: Default::default(),
        peak: Default::default(),
    });
    let d = Dispatcher::start(Arc::new(One(plugin.clone())), journal.clone(), settings())
        .expect("start");
    assert_eq!(d.accept(events(60)).await, Ok(60));
    // Claims fill up to CLAIM_DEPTH × max_concurrency while three run.
    let mut most_claimed = 0;
    while d.stats().done.load(Ordering::SeqCst) < 60 {
        most_claimed = most_claimed.max(d.in_flight().len());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        plugin.peak.load(Ordering::SeqCst),
        3,
        "max_concurrency caps running"
    );
    // One host: claims up to CLAIM_DEPTH × max_concurrency; a shared
    // journal also holds every host to the manifest's 6 at once.
    let most = match backend {
        Backend::Sqlite(_) => 3 * gridlet::dispatch::CLAIM_DEPTH as usize,
        Backend::JetStream(_) => 6,
    };
    assert!(
        most_claimed > 3 && most_claimed <= most,
        "claimed at once: {most_claimed}"
    );
    drained(journal.as_ref()).await;
}

const QUOTA: KvQuota = KvQuota {
    max_keys: 100,
    max_bytes: 1 << 20,
};

async fn plugin_state_survives_a_restart_and_stays_in_its_namespace(backend: Backend) {
    {
        let (_journal, kv) = backend.open_with_state();
        kv.set(
            "team-a",
            "default",
            "promoted/m:1",
            b"evt-9".to_vec(),
            QUOTA,
        )
        .await
        .expect("set");
        assert_eq!(
            kv.increment("team-a", "default", "count", 2, QUOTA)
                .await
                .expect("inc"),
            2
        );
    }
    let (_journal, kv) = backend.open_with_state();
    assert_eq!(
        kv.get("team-a", "default", "promoted/m:1")
            .await
            .expect("get"),
        Some(b"evt-9".to_vec())
    );
    assert_eq!(
        kv.increment("team-a", "default", "count", 3, QUOTA)
            .await
            .expect("inc"),
        5
    );
    assert_eq!(
        kv.get("team-b", "default", "promoted/m:1")
            .await
            .expect("get"),
        None,
        "another plugin's namespace"
    );
    assert_eq!(
        kv.keys("team-a", "default", None, 10).await.expect("keys"),
        vec!["count".to_string(), "promoted/m:1".to_string()]
    );
    assert_eq!(
        kv.keys("team-a", "default", Some("count".into()), 10)
            .await
            .expect("keys"),
        vec!["promoted/m:1".to_string()],
        "paged by key"
    );
    assert!(
        kv.increment("team-a", "default", "promoted/m:1", 1, QUOTA)
            .await
            .is_err(),
        "not a counter"
    );
}

/// Two cluster hosts (two journals, each with its own connection)
/// increment one plugin's counter at once: no increment is lost. (One
/// SQLite file is one host's: there is no second host to ask.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_incremented_from_two_cluster_hosts_is_exact() {
    let backend = Backend::jetstream();
    let hosts = [backend.open_with_state(), backend.open_with_state()];
    let mut tasks = Vec::new();
    for (_, kv) in &hosts {
        for _ in 0..4 {
            let kv = kv.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..125 {
                    kv.increment("team-a", "default", "runs", 1, QUOTA)
                        .await
                        .expect("increment");
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("task");
    }
    let (_, kv) = &hosts[1];
    let value = kv.get("team-a", "default", "runs").await.expect("get");
    assert_eq!(
        value,
        Some(1000u64.to_le_bytes().to_vec()),
        "1,000 increments"
    );
}

/// NATS entirely down: the webhook answers 503 (nothing stored), and once
/// the server is back the host carries on by itself, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_down_means_503_then_recovery_with_nothing_lost() {
    let mut backend = Backend::jetstream();
    let journal = backend.open();
    let p = Scripted::new("p", 30, |_| Verdict::Done);
    let d = Dispatcher::start(Arc::new(Set(vec![p.clone()])), journal.clone(), settings())
        .expect("start");
    let mut all = events(6);
    let later = all.split_off(3);
    assert_eq!(d.accept(all).await, Ok(3));
    drained(journal.as_ref()).await;

    let Backend::JetStream(server) = &mut backend else {
        unreachable!()
    };
    server.kill();
    let busy = d
        .accept(later.clone())
        .await
        .expect_err("refused while NATS is down");
    assert_eq!(
        busy.reason,
        "the journal cannot store the events now; nothing was stored"
    );
    server.restart();
    // Event Grid retries the batch; the client reconnects by itself.
    let started = Instant::now();
    loop {
        match d.accept(later.clone()).await {
            Ok(n) => {
                // A publish the client sent as it reconnected may have
                // landed: then the retry is a duplicate, acknowledged.
                assert!(n <= 3, "{n}");
                break;
            }
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no recovery: {e:?}"),
        }
    }
    drained(journal.as_ref()).await;
    let mut ids: Vec<String> = p.calls().into_iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "every accepted event delivered: {ids:?}");
}

/// A journal that cannot commit: the disk is full, the file is locked.
struct Broken(Arc<dyn Journal>);

impl Journal for Broken {
    fn append(
        &self,
        _: Vec<NewEvent>,
    ) -> Result<gridlet::journal::Appended, gridlet::journal::JournalError> {
        Err(gridlet::journal::JournalError("disk I/O error".into()))
    }
    fn claim_due(
        &self,
        now: i64,
        limit: usize,
        slots: &[Slots],
        other: u32,
        busy: &[i64],
    ) -> Result<gridlet::journal::Claimed, gridlet::journal::JournalError> {
        self.0.claim_due(now, limit, slots, other, busy)
    }
    fn postpone(&self, id: i64, due: i64) -> Result<(), gridlet::journal::JournalError> {
        self.0.postpone(id, due)
    }
    fn expire(
        &self,
        plugin: &str,
        before: i64,
        now: i64,
    ) -> Result<u64, gridlet::journal::JournalError> {
        self.0.expire(plugin, before, now)
    }
    fn outstanding(&self) -> u64 {
        self.0.outstanding()
    }
    fn next_due_ms(
        &self,
        slots: &[gridlet::journal::Slots],
    ) -> Result<Option<i64>, gridlet::journal::JournalError> {
        self.0.next_due_ms(slots)
    }
    fn complete(&self, id: i64) -> Result<(), gridlet::journal::JournalError> {
        self.0.complete(id)
    }
    fn retry_at(&self, id: i64, due: i64, e: &str) -> Result<(), gridlet::journal::JournalError> {
        self.0.retry_at(id, due, e)
    }
    fn dead_letter(
        &self,
        id: i64,
        r: gridlet::journal::DeadLetterReason,
        e: &str,
        now: i64,
        attempts: u32,
    ) -> Result<(), gridlet::journal::JournalError> {
        self.0.dead_letter(id, r, e, now, attempts)
    }
    fn pending(&self) -> Result<u64, gridlet::journal::JournalError> {
        self.0.pending()
    }
    fn check_writable(&self) -> Result<(), gridlet::journal::JournalError> {
        Err(gridlet::journal::JournalError("disk I/O error".into()))
    }
    fn deliveries(
        &self,
        p: Option<&str>,
        limit: usize,
    ) -> Result<Vec<gridlet::journal::PendingDelivery>, gridlet::journal::JournalError> {
        self.0.deliveries(p, limit)
    }
    fn delivery_counts(&self) -> Result<Vec<(String, u64, u64)>, gridlet::journal::JournalError> {
        self.0.delivery_counts()
    }
    fn dead_letters(
        &self,
        p: Option<&str>,
    ) -> Result<Vec<gridlet::journal::DeadLetter>, gridlet::journal::JournalError> {
        self.0.dead_letters(p)
    }
    fn dead_letter_event(
        &self,
        id: i64,
    ) -> Result<
        Option<(gridlet::journal::DeadLetter, serde_json::Value)>,
        gridlet::journal::JournalError,
    > {
        self.0.dead_letter_event(id)
    }
    fn purge(&self, ids: &[i64]) -> Result<u64, gridlet::journal::JournalError> {
        self.0.purge(ids)
    }
    fn replay(
        &self,
        ids: &[i64],
        now: i64,
        force: bool,
    ) -> Result<gridlet::journal::Replayed, gridlet::journal::JournalError> {
        self.0.replay(ids, now, force)
    }
}

async fn a_journal_that_cannot_commit_means_503_and_nothing_delivered(backend: Backend) {
    let journal = Arc::new(Broken(backend.open()));
    let p = Scripted::new("p", 30, |_| Verdict::Done);
    let d = Dispatcher::start(Arc::new(Set(vec![p.clone()])), journal.clone(), settings())
        .expect("start");
    let busy = d.accept(events(3)).await.expect_err("refused");
    assert_eq!(
        busy.reason,
        "the journal cannot store the events now; nothing was stored"
    );
    assert_eq!(busy.retry_after, 10);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(p.calls().is_empty());
    assert_eq!(journal.pending().expect("pending"), 0);
}

/// In a cluster, a delivery for a plugin this host does not have may be
/// another host's to run: it is dead-lettered as gone only once older than
/// the grace, and never while the plugin is in the cluster's bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_host_leaves_other_hosts_plugins_alone() {
    let server = nats::NatsServer::start();
    let connect = |grace: Duration| {
        JetStreamJournal::connect(ClusterSettings {
            urls: vec![server.url()],
            unknown_plugin_grace: grace,
            ..ClusterSettings::default()
        })
        .expect("journal")
    };
    let journal = connect(Duration::from_secs(600));
    let one = |plugin: &str, i: usize| NewEvent {
        event: Arc::new(events(i + 1).remove(i)),
        plugins: vec![plugin.into()],
    };
    journal
        .append(vec![one("elsewhere", 0), one("pushed", 1)])
        .expect("append");
    let swept = journal
        .claim_due(now_ms(), 16, &[], 16, &[])
        .expect("claim");
    assert!(swept.due.is_empty(), "young: left for the host that has it");
    assert_eq!(journal.pending().expect("pending"), 2);

    // With no grace, the unknown one is taken (to be dead-lettered); the
    // one pushed to the cluster is not.
    let store = journal.plugin_store();
    store
        .push("pushed", b"\0asm\x01\0\0\0", None)
        .await
        .expect("push");
    drop(journal);
    let journal = connect(Duration::ZERO);
    let mut taken = Vec::new();
    let started = Instant::now();
    while taken.is_empty() && started.elapsed() < Duration::from_secs(10) {
        taken = journal
            .claim_due(now_ms(), 16, &[], 16, &[])
            .expect("claim")
            .due
            .into_iter()
            .map(|d| d.plugin)
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(taken, vec!["elsewhere".to_string()]);
}

/// A NATS URL may carry a password: a bad one is named by its position.
#[test]
fn a_bad_cluster_url_is_refused_without_echoing_it() {
    let refused = JetStreamJournal::connect(ClusterSettings {
        urls: vec!["nats://gridlet:s3cret@[::1".into()],
        ..ClusterSettings::default()
    });
    let Err(e) = refused else {
        panic!("connected to a malformed URL")
    };
    let message = e.to_string();
    assert!(message.contains("urls: entry 1"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

/// Two hosts on one cluster share a plugin's bound: what one holds the
/// other cannot take, a retry waiting for its time holds nothing, and a
/// lowered bound holds from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_bound_is_shared_by_every_host() {
    let server = nats::NatsServer::start();
    let connect = || {
        JetStreamJournal::connect(ClusterSettings {
            urls: vec![server.url()],
            ..ClusterSettings::default()
        })
        .expect("journal")
    };
    let (a, b) = (connect(), connect());
    a.append(
        events(10)
            .into_iter()
            .map(|e| NewEvent {
                event: Arc::new(e),
                plugins: vec!["p".into()],
            })
            .collect(),
    )
    .expect("append");
    let slots = |overall: u32| {
        vec![Slots {
            plugin: "p".into(),
            free: 16,
            overall,
            in_flight: Vec::new(),
        }]
    };
    let claim = |journal: &JetStreamJournal, overall: u32| -> Vec<i64> {
        let claimed = journal
            .claim_due(now_ms(), 16, &slots(overall), 0, &[])
            .expect("claim");
        claimed.due.iter().map(|d| d.id).collect()
    };
    // A slot given back is a nak the server takes in its own time: claim
    // until `n` are held (or 5 s).
    let claim_soon = |journal: &JetStreamJournal, overall: u32, n: usize| -> Vec<i64> {
        let started = Instant::now();
        let mut ids = Vec::new();
        while ids.len() < n && started.elapsed() < Duration::from_secs(5) {
            ids.extend(claim(journal, overall));
            std::thread::sleep(Duration::from_millis(20));
        }
        ids
    };
    let held_by_a = claim(&a, 3);
    assert_eq!(held_by_a.len(), 3, "up to the bound");
    assert!(claim(&b, 3).is_empty(), "a holds all three");

    // A retry due in an hour goes back and frees its slot; so does a
    // completed delivery.
    a.retry_at(held_by_a[0], now_ms() + 3_600_000, "later")
        .expect("retry");
    a.complete(held_by_a[1]).expect("complete");
    let held_by_b = claim_soon(&b, 3, 2);
    assert_eq!(held_by_b.len(), 2, "b takes the two freed: {held_by_b:?}");
    assert!(claim(&b, 3).is_empty(), "and no more");

    // Lowered to 1 (a manifest changed): one at a time across both hosts
    // once the deliveries held under the old bound are settled.
    for id in held_by_b.iter().chain(&held_by_a[2..]) {
        b.complete(*id)
            .or_else(|_| a.complete(*id))
            .expect("complete");
    }
    let first = claim_soon(&a, 1, 1);
    assert_eq!(first.len(), 1, "one slot");
    assert!(claim(&b, 1).is_empty(), "and a holds it");
    a.complete(first[0]).expect("complete");
    assert_eq!(claim_soon(&b, 1, 1).len(), 1, "then b");
}

/// Every failed attempt's error goes with the delivery into its dead
/// letter, oldest first; past twenty the oldest go (each cut at 500 bytes).
async fn a_dead_letter_keeps_each_attempts_error_the_latest_twenty(backend: Backend) {
    let journal = backend.open();
    journal
        .append(vec![NewEvent {
            event: Arc::new(events(1).remove(0)),
            plugins: vec!["p".into()],
        }])
        .expect("append");
    let slots = [Slots {
        plugin: "p".into(),
        free: 1,
        overall: 1,
        in_flight: Vec::new(),
    }];
    let claim = || {
        let started = Instant::now();
        loop {
            let due = journal
                .claim_due(now_ms(), 1, &slots, 0, &[])
                .expect("claim")
                .due;
            if let Some(d) = due.first() {
                return d.id;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "not due");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    for attempt in 1..=25 {
        let error = if attempt == 25 {
            "x".repeat(2000)
        } else {
            format!("error {attempt}")
        };
        journal.retry_at(claim(), now_ms(), &error).expect("retry");
    }
    journal
        .dead_letter(
            claim(),
            gridlet::journal::DeadLetterReason::MaxDeliveryAttemptsExceeded,
            "error 26",
            now_ms(),
            26,
        )
        .expect("dead letter");
    let letter = journal.dead_letters(None).expect("list").remove(0);
    let mut expected: Vec<String> = (7..=24).map(|a| format!("error {a}")).collect();
    expected.push(format!("{}…", "x".repeat(500)));
    expected.push("error 26".into());
    assert_eq!(letter.errors, expected);
    assert_eq!(letter.last_error, "error 26");
}
