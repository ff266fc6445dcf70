//! What every peer guest does with a delivery, the same work as gridlet's
//! trivial plugin (`failed-run-alert` on a RunCompleted event): parse the
//! Event Grid event JSON into typed fields and decide whether a run failed.
//! gridlet's host parses the JSON and hands the plugin typed values; a peer
//! guest gets bytes, so it parses them itself.

use serde::Deserialize;

/// The envelope fields gridlet's WIT `event` record carries.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    pub topic: String,
    pub subject: String,
    pub event_type: String,
    pub event_time: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Parse one event or an Event Grid batch (a JSON array).
pub fn parse(body: &[u8]) -> Result<Vec<Event>, serde_json::Error> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(body),
        _ => serde_json::from_slice(body).map(|e| vec![e]),
    }
}

/// The trivial plugin's decision: would it alert on this event?
pub fn run_failed(event: &Event) -> bool {
    event.event_type == "Microsoft.MachineLearningServices.RunStatusChanged"
        && event.data["runStatus"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("failed"))
}
