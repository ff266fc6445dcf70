//! Failed-run alert: when an Azure ML run fails, post a message to a chat
//! webhook (Teams, Slack or anything that takes `{"text": ...}`) with the
//! experiment, the run and a link to the run in Azure ML studio.
//!
//! Config (declared under `[config]` in `failed-run-alert.toml`; the values
//! come from the operator, gridlet.toml `[plugins.failed-run-alert.config]`):
//! - `chat_webhook_url` (required): where to POST the message;
//! - `studio_url` (optional, default `https://ml.azure.com`).

use gridlet_plugin::{config, export, http, log, Event, HandlerError, MlEvent, Plugin};
use serde_json::json;

struct FailedRunAlert;

impl Plugin for FailedRunAlert {
    fn handle(event: Event) -> Result<(), HandlerError> {
        let MlEvent::RunStatusChanged(run) = &event.data else {
            return Ok(());
        };
        if !run.run_status.eq_ignore_ascii_case("failed") {
            log::debug(&format!(
                "run {} is {}: nothing to do",
                run.run_id, run.run_status
            ));
            return Ok(());
        }
        let webhook = config::require("chat_webhook_url")?;
        let studio = config::get("studio_url").unwrap_or_else(|| "https://ml.azure.com".into());
        let link = studio_link(&studio, &event.topic, &run.experiment_id, &run.run_id);
        let message = json!({
            "text": format!(
                "Run {} of experiment {} failed. {}",
                run.run_id, run.experiment_name, link
            ),
            "experiment": run.experiment_name,
            "experimentId": run.experiment_id,
            "runId": run.run_id,
            "link": link,
            "eventId": event.id,
        });
        let response = http::post_json(&webhook, message.to_string().as_bytes())?;
        match response.status {
            200..=299 => {
                log::info(&format!("alerted chat about failed run {}", run.run_id));
                Ok(())
            }
            408 | 429 | 500..=599 => Err(HandlerError::Retry(format!(
                "chat webhook answered {}",
                response.status
            ))),
            status => Err(HandlerError::Reject(format!(
                "chat webhook answered {status}: {}",
                response.text()
            ))),
        }
    }
}

/// A link to the run in Azure ML studio. The topic is the workspace's
/// resource id; studio wants `/subscriptions/{s}/resourcegroups/{rg}/workspaces/{ws}`.
fn studio_link(studio: &str, topic: &str, experiment_id: &str, run_id: &str) -> String {
    let segments: Vec<&str> = topic.split('/').filter(|s| !s.is_empty()).collect();
    let after = |name: &str| {
        segments
            .windows(2)
            .find(|w| w[0].eq_ignore_ascii_case(name))
            .map(|w| w[1])
            .unwrap_or("")
    };
    let wsid = format!(
        "/subscriptions/{}/resourcegroups/{}/workspaces/{}",
        after("subscriptions"),
        after("resourceGroups"),
        after("workspaces")
    );
    format!(
        "{}/experiments/id/{experiment_id}/runs/{run_id}?wsid={wsid}",
        studio.trim_end_matches('/')
    )
}

export!(FailedRunAlert);
