//! Test fixture: POST what the plugin received to `sink_url`, so end-to-end
//! tests can see exactly which plugin got which event, typed how.
//!
//! The same source builds two crates, `echo` and `echo-v2`: the POST names
//! the build (`"build"`), so hot-reload tests see which version handled an
//! event. A subject ending in `/sleep-<ms>` makes the delivery sleep first.

use gridlet_plugin::{Event, HandlerError, MlEvent, Plugin, config, export, http};
use serde_json::json;

struct Echo;

/// Deliveries this instance has handled: 1 on every fresh instance, and
/// counting up when the host reuses the instance (`limits.reuse_instance`).
static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Plugin for Echo {
    fn handle(event: Event) -> Result<(), HandlerError> {
        if let Some((_, ms)) = event.subject.rsplit_once("/sleep-")
            && let Ok(ms) = ms.parse()
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let kind = match &event.data {
            MlEvent::RunCompleted(_) => "run-completed",
            MlEvent::RunStatusChanged(_) => "run-status-changed",
            MlEvent::ModelRegistered(_) => "model-registered",
            MlEvent::ModelDeployed(_) => "model-deployed",
            MlEvent::DatasetDriftDetected(_) => "dataset-drift-detected",
            MlEvent::Other => "other",
        };
        let body = json!({
            "plugin": config::get("name").unwrap_or_default(),
            "configKeys": config::all().into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "build": env!("CARGO_PKG_NAME"),
            "instanceCalls": CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1,
            "id": event.id,
            "topic": event.topic,
            "subject": event.subject,
            "eventType": event.event_type,
            "eventTime": event.event_time,
            "dataVersion": event.data_version,
            "kind": kind,
            "data": serde_json::from_str::<serde_json::Value>(&event.data_json).unwrap_or_default(),
            "attempt": event.attempt,
        });
        let url = config::require("sink_url")?;
        let response = http::post_json(&url, body.to_string().as_bytes())?;
        if response.status >= 300 {
            return Err(HandlerError::Retry(format!(
                "sink answered {}",
                response.status
            )));
        }
        Ok(())
    }
}

export!(Echo);
