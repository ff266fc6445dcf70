//! Model promotion: when a model version tagged `stage=prod` is registered,
//! ask the deployment pipeline to deploy it — exactly once per model version.
//!
//! The plugin remembers each version it has asked for in its key-value
//! namespace, so a redelivered event or a second registration event for the
//! same version does not deploy twice. It also sends the version as an
//! `Idempotency-Key` header for pipelines that deduplicate themselves.
//!
//! Config (declared under `[config]` in `model-promotion.toml`; the values
//! come from the operator, gridlet.toml `[plugins.model-promotion.config]`):
//! - `deploy_url` (required): the pipeline endpoint to POST to;
//! - `deploy_token` (optional): sent as `Authorization: Bearer <token>`;
//! - `stage_tag` / `stage_value` (optional, default `stage` / `prod`).

use gridlet_plugin::http::{self, Method};
use gridlet_plugin::{config, export, kv, log, tag, Event, HandlerError, MlEvent, Plugin};
use serde_json::json;

struct ModelPromotion;

impl Plugin for ModelPromotion {
    fn handle(event: Event) -> Result<(), HandlerError> {
        let MlEvent::ModelRegistered(model) = &event.data else {
            return Ok(());
        };
        let stage_tag = config::get("stage_tag").unwrap_or_else(|| "stage".into());
        let wanted = config::get("stage_value").unwrap_or_else(|| "prod".into());
        let stage = tag(&model.model_tags, &stage_tag).unwrap_or("");
        if !stage.eq_ignore_ascii_case(&wanted) {
            log::debug(&format!(
                "{}:{} has {stage_tag}={stage:?}: not promoting",
                model.model_name, model.model_version
            ));
            return Ok(());
        }

        let version = format!("{}:{}", model.model_name, model.model_version);
        let remembered = format!("promoted/{version}");
        if let Some(by) = kv::get(&remembered)? {
            log::info(&format!(
                "{version} already requested (event {by}): skipping"
            ));
            return Ok(());
        }

        let url = config::require("deploy_url")?;
        let tags: serde_json::Map<String, serde_json::Value> = model
            .model_tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        let request = json!({
            "model": model.model_name,
            "version": model.model_version,
            "tags": tags,
            "workspace": event.topic,
            "eventId": event.id,
        });
        let auth = config::get("deploy_token")
            .filter(|t| !t.is_empty())
            .map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("content-type", "application/json"),
            ("idempotency-key", &version),
        ];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth));
        }
        let response = http::send(Method::Post, &url, &headers, request.to_string().as_bytes())?;
        match response.status {
            200..=299 => {
                kv::set(&remembered, &event.id)?;
                log::info(&format!("requested deployment of {version}"));
                Ok(())
            }
            408 | 429 | 500..=599 => Err(HandlerError::Retry(format!(
                "deployment pipeline answered {}",
                response.status
            ))),
            status => Err(HandlerError::Reject(format!(
                "deployment pipeline refused {version} with {status}: {}",
                response.text()
            ))),
        }
    }
}

export!(ModelPromotion);
