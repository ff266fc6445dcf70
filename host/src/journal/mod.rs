//! The journal: where accepted events and their deliveries live until every
//! matching plugin has handled them, and where dead letters and plugin state
//! are kept. A trait, so that a distributed engine can stand in for the
//! embedded SQLite one when gridlet runs on many hosts.

mod jetstream;
mod sqlite;

pub use jetstream::{ClusterSettings, JetStreamJournal, PluginChange, PluginStore, PushedPlugin};
pub use sqlite::{JournalSettings, KvDone, KvQuota, KvRefusal, KvWrite, SqliteJournal};

use crate::event::Event;

/// One accepted event and the plugins whose filters matched it.
pub struct NewEvent {
    /// The event (shared: the journal keeps recent ones parsed).
    pub event: std::sync::Arc<Event>,
    /// The plugins it is for, one delivery each.
    pub plugins: Vec<String>,
}

/// What an append stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// New events stored.
    pub events: usize,
    /// Events already seen (same topic and id within the dedup window):
    /// acknowledged, not stored again.
    pub duplicates: usize,
    /// Deliveries created.
    pub deliveries: usize,
}

/// What a claim found: deliveries to attempt, and deliveries whose stored
/// event could not be read back (to be dead-lettered on their own, never to
/// stop the others).
#[derive(Debug, Default)]
pub struct Claimed {
    /// Deliveries to attempt.
    pub due: Vec<DueDelivery>,
    /// Deliveries whose event is unreadable.
    pub unreadable: Vec<Unreadable>,
}

/// A claimed delivery whose stored event cannot be read.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The delivery.
    pub id: i64,
    /// Its plugin.
    pub plugin: String,
    /// The attempt it would have been.
    pub attempt: u32,
    /// Why the event cannot be read.
    pub error: String,
}

/// A delivery that is due, claimed for one attempt.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// The delivery's id.
    pub id: i64,
    /// The event.
    pub event: std::sync::Arc<Event>,
    /// The plugin's name.
    pub plugin: String,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// When gridlet accepted the event (ms since the Unix epoch).
    pub received_at_ms: i64,
    /// When this delivery's time-to-live started: when the event was
    /// accepted, or when an operator replayed its dead letter (a replay is
    /// a new delivery with a whole time-to-live of its own).
    pub ttl_from_ms: i64,
}

/// Why a delivery was given up, in Event Grid's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// Every allowed attempt failed.
    MaxDeliveryAttemptsExceeded,
    /// The event outlived its time-to-live.
    TimeToLiveExceeded,
    /// The plugin answered `reject`.
    Rejected,
    /// The plugin is no longer loaded.
    PluginNotFound,
    /// The stored event cannot be read back (a journal written by another
    /// version, a damaged file): only this delivery is given up.
    EventUnreadable,
}

impl DeadLetterReason {
    /// The name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxDeliveryAttemptsExceeded => "MaxDeliveryAttemptsExceeded",
            Self::TimeToLiveExceeded => "TimeToLiveExceeded",
            Self::Rejected => "Rejected",
            Self::PluginNotFound => "PluginNotFound",
            Self::EventUnreadable => "EventUnreadable",
        }
    }
}

/// A delivery that was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The dead letter's id.
    pub id: i64,
    /// The event's id.
    pub event_id: String,
    /// The event's topic.
    pub topic: String,
    /// The event's type.
    pub event_type: String,
    /// The plugin.
    pub plugin: String,
    /// `deadLetterReason`.
    pub reason: String,
    /// `deliveryAttempts`.
    pub delivery_attempts: u32,
    /// The last attempt's error.
    pub last_error: String,
    /// Every failed attempt's error, oldest first (the last
    /// [`KEPT_ERRORS`], each cut at [`KEPT_ERROR_BYTES`]); the last is
    /// `last_error`.
    pub errors: Vec<String>,
    /// When the event was accepted (ms since the epoch): Event Grid's `publishTime`.
    pub publish_time_ms: i64,
    /// When it was dead-lettered (ms since the epoch).
    pub dead_lettered_ms: i64,
    /// When it was replayed, if it was.
    pub replayed_ms: Option<i64>,
}

/// Failed attempts' errors a delivery keeps (the latest).
pub const KEPT_ERRORS: usize = 20;
/// Bytes of one kept error.
pub const KEPT_ERROR_BYTES: usize = 500;

/// `error` as a delivery keeps it: cut at [`KEPT_ERROR_BYTES`].
pub fn kept_error(error: &str) -> String {
    if error.len() <= KEPT_ERROR_BYTES {
        return error.to_string();
    }
    format!("{}…", &error[..error.floor_char_boundary(KEPT_ERROR_BYTES)])
}

/// `errors` with `error` added, the oldest dropped past [`KEPT_ERRORS`].
pub fn with_error(mut errors: Vec<String>, error: &str) -> Vec<String> {
    errors.push(kept_error(error));
    if errors.len() > KEPT_ERRORS {
        errors.drain(..errors.len() - KEPT_ERRORS);
    }
    errors
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Dead letters delivered again.
    pub replayed: u64,
    /// Dead letters skipped because they were replayed before.
    pub skipped: u64,
}

/// A delivery not yet done, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelivery {
    /// The delivery's id.
    pub id: i64,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The plugin.
    pub plugin: String,
    /// Attempts made so far (0: never attempted).
    pub attempts: u32,
    /// When it is due (ms since the epoch).
    pub due_at_ms: i64,
    /// The last attempt's error ("" before any).
    pub last_error: String,
    /// When the event was accepted (ms since the epoch).
    pub received_at_ms: i64,
}

/// Called once a write is committed (or failed), from the journal's writer.
pub type Completion = Box<dyn FnOnce(Result<(), JournalError>) + Send>;

/// Called once an append is committed (or failed).
pub type AppendCompletion = Box<dyn FnOnce(Result<Appended, JournalError>) + Send>;

/// How a delivery's attempt is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Handled: the delivery is done.
    Complete(i64),
    /// Failed: try again at `due_ms`.
    RetryAt {
        /// The delivery.
        id: i64,
        /// When.
        due_ms: i64,
        /// Why the attempt failed.
        error: String,
    },
    /// Not attempted (no instance could be had, the plugin is not serving):
    /// due again at `due_ms`, and the attempt does not count.
    Postpone {
        /// The delivery.
        id: i64,
        /// When.
        due_ms: i64,
    },
    /// Given up.
    DeadLetter {
        /// The delivery.
        id: i64,
        /// Event Grid's reason.
        reason: DeadLetterReason,
        /// The last error.
        error: String,
        /// When (ms since the epoch).
        at_ms: i64,
        /// Attempts made.
        attempts: u32,
    },
}

/// A journal failure. Ingest answers 503 for it: nothing was stored.
#[derive(Debug, thiserror::Error)]
#[error("journal: {0}")]
pub struct JournalError(pub String);

impl From<rusqlite::Error> for JournalError {
    fn from(e: rusqlite::Error) -> Self {
        JournalError(e.to_string())
    }
}

/// What the dispatcher may claim of one plugin.
#[derive(Debug, Clone, Default)]
pub struct Slots {
    /// The plugin.
    pub plugin: String,
    /// Deliveries it may take now.
    pub free: u32,
    /// The most of its deliveries every host sharing the journal may hold
    /// at once (its manifest's `max_concurrency`). A journal only this host
    /// uses may ignore it: `free` already bounds one host.
    pub overall: u32,
    /// Its deliveries claimed and not yet settled: not to be claimed again.
    /// Per plugin, so each plugin's claim skips only its own (with many
    /// plugins, one list of every id made each plugin's query parse it).
    pub in_flight: Vec<i64>,
}

/// The durable store of events, deliveries, dead letters and plugin state.
pub trait Journal: Send + Sync + 'static {
    /// Store the batch in one transaction (committed before this returns),
    /// skipping events already seen.
    fn append(&self, batch: Vec<NewEvent>) -> Result<Appended, JournalError>;
    /// Up to `limit` deliveries due at `now_ms`, oldest first, at most
    /// each named plugin's free [`Slots`] (leaving out its ids in flight),
    /// and `other_slots` for plugins not named (leaving out `in_flight`). Claims live in the dispatcher, not
    /// here: after a crash every delivery without a recorded outcome is
    /// simply due again, and an interrupted attempt does not count.
    fn claim_due(
        &self,
        now_ms: i64,
        limit: usize,
        slots: &[Slots],
        other_slots: u32,
        in_flight: &[i64],
    ) -> Result<Claimed, JournalError>;
    /// When the next delivery `slots` could claim is due, if any: of the
    /// plugins with free slots, their deliveries not in flight.
    fn next_due_ms(&self, slots: &[Slots]) -> Result<Option<i64>, JournalError>;
    /// The delivery was handled.
    fn complete(&self, id: i64) -> Result<(), JournalError>;
    /// The delivery failed; try again at `due_ms`.
    fn retry_at(&self, id: i64, due_ms: i64, error: &str) -> Result<(), JournalError>;
    /// The delivery was not attempted; it is due again at `due_ms`.
    fn postpone(&self, id: i64, due_ms: i64) -> Result<(), JournalError>;
    /// Give the delivery up after `attempts` attempts.
    fn dead_letter(
        &self,
        id: i64,
        reason: DeadLetterReason,
        error: &str,
        now_ms: i64,
        attempts: u32,
    ) -> Result<(), JournalError>;
    /// Dead-letter `plugin`'s deliveries of events accepted before
    /// `received_before_ms` as `TimeToLiveExceeded` (for a plugin whose
    /// deliveries wait while no version serves); returns how many.
    fn expire(
        &self,
        plugin: &str,
        received_before_ms: i64,
        now_ms: i64,
    ) -> Result<u64, JournalError>;
    /// Deliveries not yet done (after everything queued is committed).
    fn pending(&self) -> Result<u64, JournalError>;
    /// Deliveries committed and not yet done, as the journal counts them
    /// when it commits: cheap, and never drifting from the journal (the
    /// backpressure bound is checked against it).
    fn outstanding(&self) -> u64;
    /// [`Journal::append`] without blocking the caller: `done` is called
    /// once the batch is committed. The default blocks; journals with a
    /// writer of their own answer from it.
    fn append_then(&self, batch: Vec<NewEvent>, done: AppendCompletion) {
        done(self.append(batch));
    }
    /// Record an attempt without blocking the caller: `done` is called once
    /// it is committed. The default blocks.
    fn settle(&self, settlement: Settlement, done: Completion) {
        done(match settlement {
            Settlement::Complete(id) => self.complete(id),
            Settlement::RetryAt { id, due_ms, error } => self.retry_at(id, due_ms, &error),
            Settlement::Postpone { id, due_ms } => self.postpone(id, due_ms),
            Settlement::DeadLetter {
                id,
                reason,
                error,
                at_ms,
                attempts,
            } => self.dead_letter(id, reason, &error, at_ms, attempts),
        })
    }
    /// Commit a small write now: can the journal take writes? (Readiness.)
    fn check_writable(&self) -> Result<(), JournalError>;
    /// Deliveries not yet done, oldest due first, optionally for one plugin.
    fn deliveries(
        &self,
        plugin: Option<&str>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, JournalError>;
    /// Per plugin: deliveries never attempted, and deliveries waiting for a retry.
    fn delivery_counts(&self) -> Result<Vec<(String, u64, u64)>, JournalError>;
    /// Dead letters, newest first, optionally for one plugin.
    fn dead_letters(&self, plugin: Option<&str>) -> Result<Vec<DeadLetter>, JournalError>;
    /// One dead letter and its event as stored (JSON), if it exists.
    fn dead_letter_event(
        &self,
        id: i64,
    ) -> Result<Option<(DeadLetter, serde_json::Value)>, JournalError>;
    /// Forget dead letters; returns how many.
    fn purge(&self, ids: &[i64]) -> Result<u64, JournalError>;
    /// Deliver dead letters again (a new delivery each, due at `now_ms`
    /// and with its time-to-live from then), skipping those replayed
    /// before unless `force`.
    fn replay(&self, ids: &[i64], now_ms: i64, force: bool) -> Result<Replayed, JournalError>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-11-28T02:20:31.555Z`).
pub fn rfc3339(ms: i64) -> String {
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
