//! The Rust example plugins on every sample event: the documented outcome,
//! and the POSTs that reach a local server with the expected bodies.

mod common;

use common::{Recorder, event, events, grant, load, runtime};
use gridlet::plugin::{LoadedPlugin, PluginGrant};
use gridlet::runtime::{Entry, Outcome, Runtime};

/// failed-run-alert granted a local sink as its chat webhook.
async fn alerting() -> (Recorder, Runtime, LoadedPlugin) {
    let sink = Recorder::start().await;
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "failed-run-alert",
        "",
        &grant(&[("chat_webhook_url", &sink.url("/chat"))], &[&sink.host()]),
    );
    (sink, runtime, plugin)
}

/// model-promotion granted a local sink as its deployment pipeline.
async fn promoting() -> (Recorder, Runtime, LoadedPlugin) {
    let sink = Recorder::start().await;
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "model-promotion",
        "",
        &grant(
            &[
                ("deploy_url", &sink.url("/deploy")),
                ("deploy_token", "s3cret-token"),
            ],
            &[&sink.host()],
        ),
    );
    (sink, runtime, plugin)
}

#[tokio::test]
async fn failed_run_alert_posts_the_run_and_a_studio_link() {
    let (sink, runtime, plugin) = alerting().await;

    let failed = event("eventgrid/run-status-changed-failed.json");
    let invocation = runtime.invoke(&plugin.version, &failed, 1).await;
    assert_eq!(invocation.outcome, Outcome::Handled);

    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].path, "/chat");
    assert_eq!(received[0].headers["content-type"], "application/json");
    let body = received[0].json();
    assert_eq!(body["experiment"], "fraud-gbm-nightly");
    assert_eq!(body["experimentId"], "5f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0");
    assert_eq!(body["runId"], "fraud-gbm-nightly_1732876800_1d2e3f4a");
    assert_eq!(body["eventId"], "c8b1d3ef-2a45-4b6c-9d7e-8f9a0b1c2d3e");
    assert_eq!(
        body["link"],
        "https://ml.azure.com/experiments/id/5f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0/runs/\
         fraud-gbm-nightly_1732876800_1d2e3f4a?wsid=/subscriptions/7d3c1b2a-5e4f-4a8b-9c0d-1e2f3a4b5c6d/\
         resourcegroups/ml-prod/workspaces/fraud-detection"
    );
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("fraud-gbm-nightly_1732876800_1d2e3f4a")
    );
    assert!(invocation.entries.iter().any(|e| matches!(e,
        Entry::Http { method, result: Ok(200), .. } if method == "POST")));
}

#[tokio::test]
async fn failed_run_alert_ignores_every_other_sample_event() {
    let (sink, runtime, plugin) = alerting().await;
    let mut others = events("eventgrid/batch-mixed.json");
    for file in [
        "run-completed.json",
        "model-registered.json",
        "model-registered-pascalcase.json",
        "model-deployed.json",
        "dataset-drift-detected.json",
    ] {
        others.extend(events(&format!("eventgrid/{file}")));
    }
    // A RunStatusChanged that is not a failure.
    let mut running = event("eventgrid/run-status-changed-failed.json");
    if let gridlet::event::MlEvent::RunStatusChanged(s) = &mut running.data {
        s.run_status = "Running".into();
    }
    others.push(running);
    for e in &others {
        let invocation = runtime.invoke(&plugin.version, e, 1).await;
        assert_eq!(invocation.outcome, Outcome::Handled, "{}", e.event_type);
    }
    assert!(
        sink.received().is_empty(),
        "nothing is posted for non-failures"
    );
}

#[tokio::test]
async fn failed_run_alert_retries_on_5xx_and_rejects_on_4xx() {
    let (sink, runtime, plugin) = alerting().await;
    let failed = event("eventgrid/run-status-changed-failed.json");

    sink.answer(503);
    let outcome = runtime.invoke(&plugin.version, &failed, 1).await.outcome;
    assert_eq!(outcome, Outcome::Retry("chat webhook answered 503".into()));

    sink.answer(404);
    let outcome = runtime.invoke(&plugin.version, &failed, 2).await.outcome;
    assert!(
        matches!(&outcome, Outcome::Reject(why) if why.starts_with("chat webhook answered 404")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn failed_run_alert_without_config_rejects_and_names_the_key() {
    let runtime = runtime();
    let plugin = load(&runtime, "failed-run-alert", "", &PluginGrant::default());
    let outcome = runtime
        .invoke(
            &plugin.version,
            &event("eventgrid/run-status-changed-failed.json"),
            1,
        )
        .await
        .outcome;
    assert_eq!(
        outcome,
        Outcome::Reject(
            "config key `chat_webhook_url` is not set (the operator grants it in gridlet.toml \
             [plugins.<name>.config])"
                .into()
        )
    );
}

#[tokio::test]
async fn failed_run_alert_shipped_manifest_filters_to_failed_runs() {
    let runtime = runtime();
    let manifest = std::fs::read_to_string(
        common::root().join("plugins/failed-run-alert/failed-run-alert.toml"),
    )
    .expect("manifest");
    let plugin = load(
        &runtime,
        "failed-run-alert",
        &manifest,
        &grant(
            &[("chat_webhook_url", "https://x.webhook.office.com/a")],
            &[],
        ),
    );
    let failed = event("eventgrid/run-status-changed-failed.json");
    assert!(plugin.filter.matches(&failed));
    for file in [
        "run-completed.json",
        "model-registered.json",
        "model-deployed.json",
        "dataset-drift-detected.json",
    ] {
        assert!(
            !plugin.filter.matches(&event(&format!("eventgrid/{file}"))),
            "{file}"
        );
    }
    let mut running: serde_json::Value = serde_json::from_str(&failed.raw).expect("json");
    running["data"]["runStatus"] = "Running".into();
    let running = gridlet::event::parse_event_grid(&running, 0).expect("event");
    assert!(!plugin.filter.matches(&running));
}

#[tokio::test]
async fn model_promotion_requests_a_deployment_once_per_version() {
    let (sink, runtime, plugin) = promoting().await;
    let prod = event("eventgrid/model-registered.json");

    let first = runtime.invoke(&plugin.version, &prod, 1).await;
    assert_eq!(first.outcome, Outcome::Handled);
    assert!(first.entries.contains(&Entry::KeyValue {
        bucket: "default".into(),
        key: "promoted/fraud-gbm:7".into(),
        change: format!("set ({} bytes)", prod.id.len()),
    }));
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].headers["authorization"], "Bearer s3cret-token");
    assert_eq!(received[0].headers["idempotency-key"], "fraud-gbm:7");
    assert_eq!(
        received[0].json(),
        serde_json::json!({
            "model": "fraud-gbm",
            "version": "7",
            "tags": {"stage": "prod", "owner": "risk"},
            "workspace": prod.topic,
            "eventId": prod.id,
        })
    );

    // Event Grid redelivers, or the batch mixes in the same registration: no second POST.
    let again = runtime.invoke(&plugin.version, &prod, 2).await;
    assert_eq!(again.outcome, Outcome::Handled);
    let again = runtime
        .invoke(&plugin.version, &events("eventgrid/batch-mixed.json")[0], 1)
        .await;
    assert_eq!(again.outcome, Outcome::Handled);
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn model_promotion_skips_other_stages_and_other_events() {
    let (sink, runtime, plugin) = promoting().await;
    // PascalCase, numeric version, stage=staging.
    let staging = event("eventgrid/model-registered-pascalcase.json");
    let invocation = runtime.invoke(&plugin.version, &staging, 1).await;
    assert_eq!(invocation.outcome, Outcome::Handled);
    assert!(invocation.entries.iter().any(|e| matches!(e,
        Entry::Log { message, .. } if message == "fraud-gbm:8 has stage=\"staging\": not promoting")));
    for file in [
        "run-completed.json",
        "run-status-changed-failed.json",
        "model-deployed.json",
        "dataset-drift-detected.json",
    ] {
        let outcome = runtime
            .invoke(&plugin.version, &event(&format!("eventgrid/{file}")), 1)
            .await
            .outcome;
        assert_eq!(outcome, Outcome::Handled, "{file}");
    }
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn model_promotion_retries_on_5xx_rejects_on_4xx_and_remembers_only_success() {
    let (sink, runtime, plugin) = promoting().await;
    let prod = event("eventgrid/model-registered.json");

    sink.answer(500);
    let outcome = runtime.invoke(&plugin.version, &prod, 1).await.outcome;
    assert_eq!(
        outcome,
        Outcome::Retry("deployment pipeline answered 500".into())
    );
    sink.answer(422);
    let outcome = runtime.invoke(&plugin.version, &prod, 2).await.outcome;
    assert!(
        matches!(&outcome, Outcome::Reject(why) if why.starts_with("deployment pipeline refused fraud-gbm:7 with 422")),
        "{outcome:?}"
    );
    // Nothing was remembered, so the retry after recovery still deploys.
    sink.answer(200);
    assert_eq!(
        runtime.invoke(&plugin.version, &prod, 3).await.outcome,
        Outcome::Handled
    );
    assert_eq!(sink.received().len(), 3);
}

#[tokio::test]
async fn plugins_see_the_same_event_in_cloudevents_form() {
    let (sink, runtime, plugin) = promoting().await;
    let outcome = runtime
        .invoke(
            &plugin.version,
            &event("cloudevents/model-registered.json"),
            1,
        )
        .await
        .outcome;
    assert_eq!(outcome, Outcome::Handled);
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json()["version"], "7");
}
