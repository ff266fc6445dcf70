//! The tail of accepted events, for whoever watches (the console's live
//! view): a broadcast channel the dispatcher writes to only while someone
//! listens, after the batch is stored.

use crate::journal::NewEvent;
use serde::Serialize;

/// How many accepted events a slow watcher may fall behind before it
/// misses some (it is told how many).
pub const LIVE_BACKLOG: usize = 256;

/// One accepted event, as the live tail shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveEvent {
    /// The event's id.
    pub id: String,
    /// Its topic.
    pub topic: String,
    /// Its subject (sender-chosen text: shown, never interpreted).
    pub subject: String,
    /// Its full type.
    pub event_type: String,
    /// When it happened, as the sender says.
    pub event_time: String,
    /// The plugins it was handed to.
    pub plugins: Vec<String>,
    /// When this host stored it (RFC 3339).
    pub received_time: String,
}

impl LiveEvent {
    /// The live view of `new`, stored at `received_ms`.
    pub(super) fn of(new: &NewEvent, received_ms: i64) -> Self {
        let e = &new.event;
        Self {
            id: e.id.clone(),
            topic: e.topic.clone(),
            subject: e.subject.clone(),
            event_type: e.event_type.clone(),
            event_time: e.event_time.clone(),
            plugins: new.plugins.clone(),
            received_time: crate::journal::rfc3339(received_ms),
        }
    }
}
