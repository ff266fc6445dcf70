//! Conformance with what real senders do: the CloudEvents webhook spec's and
//! Event Grid's publisher credentials, problem titles per kind, and
//! payloads that do not fit their typed record yet never cost a batch.

mod common;

use common::process::{metrics, serve_logging};
use common::webhook::{Host, SECRET, WORKSPACE};
use common::{Recorder, echo_grant, install};
use gridlet::ingest::{SecretAuth, sas};
use serde_json::{Value, json};

/// An access key as Event Grid makes them: base64 (it signs SAS tokens).
const ACCESS_KEY: &str = "Z3JpZGxldC1jb25mb3JtYW5jZS1hY2Nlc3Mta2V5LTQyIQ==";

fn model_registered(id: &str) -> String {
    json!([{
        "id": id,
        "topic": WORKSPACE,
        "subject": "models/m:1",
        "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
        "eventTime": "2026-11-29T00:00:00Z",
        "dataVersion": "2",
        "data": {"modelName": "m", "modelVersion": "1"}
    }])
    .to_string()
}

/// A host that holds the operator's secret and an Event Grid access key.
async fn host() -> Host {
    Host::start(|s| {
        s.ingest.auth.secret = Some(SecretAuth::new(
            &[SECRET.into(), ACCESS_KEY.into()],
            "code",
            "x-gridlet-secret",
        ))
    })
    .await
}

/// Every carrier a real sender uses is accepted by default, for either
/// secret (rotation); anything else is the same 401.
#[tokio::test]
async fn every_standard_credential_carrier_is_accepted_by_default() {
    let host = host().await;
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("date");
    let token = sas::sign(&host.url(""), &soon, ACCESS_KEY).expect("sign");
    let bearer = format!("Bearer {SECRET}");
    let bearer_lower = format!("bearer {ACCESS_KEY}");
    let accepted: Vec<(String, Vec<(&str, &str)>)> = vec![
        // CloudEvents webhook spec: Authorization: Bearer, ?access_token=.
        (String::new(), vec![("authorization", &bearer)]),
        (String::new(), vec![("authorization", &bearer_lower)]),
        (format!("?access_token={SECRET}"), vec![]),
        // Event Grid publishers: aeg-sas-key (header or query), aeg-sas-token.
        (String::new(), vec![("aeg-sas-key", ACCESS_KEY)]),
        (
            format!("?aeg-sas-key={}", ACCESS_KEY.replace('=', "%3D")),
            vec![],
        ),
        (String::new(), vec![("aeg-sas-token", &token)]),
        // The operator's own carriers still work.
        (format!("?code={SECRET}"), vec![]),
        (String::new(), vec![("x-gridlet-secret", SECRET)]),
    ];
    for (i, (query, headers)) in accepted.iter().enumerate() {
        let mut headers = headers.clone();
        headers.push(("content-type", "application/json"));
        let (status, _, answer) = host
            .post(query, &headers, model_registered(&format!("ok-{i}")))
            .await;
        assert_eq!(status, 200, "{query} {headers:?}: {answer}");
    }
    let expired = sas::sign(&host.url(""), "2020-01-01 00:00:00+00:00", ACCESS_KEY).expect("sign");
    let foreign = sas::sign(&host.url(""), &soon, "b3RoZXIta2V5LW5vdC1vdXJz").expect("sign");
    let refused: Vec<(String, Vec<(&str, &str)>)> = vec![
        (String::new(), vec![("authorization", "Bearer wrong")]),
        (String::new(), vec![("authorization", SECRET)]),
        ("?access_token=wrong".into(), vec![]),
        (String::new(), vec![("aeg-sas-key", "wrong")]),
        (String::new(), vec![("aeg-sas-token", &expired)]),
        (String::new(), vec![("aeg-sas-token", &foreign)]),
        (String::new(), vec![("aeg-sas-token", "r=x&e=y")]),
        (format!("?other={SECRET}"), vec![]),
    ];
    for (query, headers) in &refused {
        let (status, _, answer) = host.post(query, headers, model_registered("no")).await;
        assert_eq!(status, 401, "{query} {headers:?}");
        assert_eq!(answer["title"], "Missing or invalid credentials");
    }
    assert_eq!(host.settled("/echo").await.len(), 2 * accepted.len());
}

/// An event published through the Azure SDK carries no `topic`: with
/// `allowed_topics` set it is refused (Event Grid always sets the topic it
/// delivers from, so an event without one did not come through it), and
/// accepted when no topics are configured.
#[tokio::test]
async fn an_event_without_a_topic_meets_allowed_topics() {
    let topicless = json!([{
        "id": "no-topic", "subject": "models/m:1",
        "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
        "eventTime": "2026-11-29T00:00:00Z", "dataVersion": "", "data": {}
    }])
    .to_string();
    let guarded = Host::start(|_| {}).await;
    let (status, _, answer) = guarded.event_grid(topicless.clone()).await;
    assert_eq!(status, 403);
    assert_eq!(
        answer["detail"],
        "event 0: topic `` is not in allowed_topics"
    );
    let open = Host::start(|s| s.ingest.allowed_topics.clear()).await;
    let (status, _, _) = open.event_grid(topicless).await;
    assert_eq!(status, 200);
}

/// Each kind of 400 has its own title, saying what was wrong.
#[tokio::test]
async fn each_kind_of_bad_request_has_its_own_title() {
    let host = Host::start(|_| {}).await;
    let json_type = ("content-type", "application/json");
    let code = format!("?code={SECRET}");
    type Case<'a> = (Vec<(&'a str, &'a str)>, String, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (vec![json_type], "{".into(), "malformed-json", "The body is not valid JSON"),
        (vec![json_type], "[]".into(), "empty-batch", "The batch holds no events"),
        (vec![json_type], "{}".into(), "not-an-array", "The body is not a JSON array of events"),
        (
            vec![json_type],
            r#"[{"id":"a","subject":"s"}]"#.into(),
            "invalid-event",
            "An event's envelope is invalid",
        ),
        (
            vec![("content-type", "application/cloudevents+json")],
            "3".into(),
            "not-an-object",
            "The CloudEvent is not a JSON object",
        ),
        (
            vec![
                ("ce-specversion", "1.0"),
                ("ce-id", "%FF"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
                json_type,
            ],
            "{}".into(),
            "invalid-header",
            "A CloudEvents header cannot be read",
        ),
        (
            vec![
                ("ce-specversion", "1.0"),
                ("ce-id", "a"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
                ("content-type", "text/plain"),
            ],
            "hello".into(),
            "unsupported-data",
            "The event's data is not JSON",
        ),
        (
            vec![json_type, ("aeg-event-type", "SubscriptionValidation")],
            r#"[{"id":"v","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","subject":"","data":{}}]"#.into(),
            "invalid-validation",
            "The subscription validation event is invalid",
        ),
    ];
    for (headers, body, kind, title) in cases {
        let (status, _, answer) = host.post(&code, &headers, body.clone()).await;
        assert_eq!(
            (status, answer["type"].as_str(), answer["title"].as_str()),
            (400, Some(kind), Some(title)),
            "{body}: {answer}"
        );
    }
    let options = host
        .client
        .request(reqwest::Method::OPTIONS, host.url(&code))
        .send()
        .await
        .expect("options");
    assert_eq!(options.status(), 400);
    let answer: Value = options.json().await.expect("json");
    assert_eq!(answer["type"], "missing-origin");
    assert_eq!(
        answer["title"],
        "The webhook handshake needs WebHook-Request-Origin"
    );
    assert_eq!(host.deliveries(), 0);
}

/// A `DatasetDriftDetected` without `driftCoefficient` (optional in the
/// Azure SDKs' models) beside good events: the batch is accepted whole,
/// every event delivered — that one with its data untouched and no typed
/// view — counted in a metric and logged once for its type.
#[tokio::test]
async fn a_payload_that_does_not_fit_its_record_never_costs_the_batch() {
    let sink = Recorder::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    install(dir.path(), "echo", "echo", "", &echo_grant(&sink, "echo"));
    let (_child, base, log) = serve_logging(dir.path(), &[]).await;
    let drift = |id: &str| {
        json!({
            "id": id, "topic": WORKSPACE, "subject": "datadrift/d1/run/r1",
            "eventType": "Microsoft.MachineLearningServices.DatasetDriftDetected",
            "eventTime": "2026-11-29T00:00:00Z", "dataVersion": "2",
            "data": {"dataDriftId": "d1", "dataDriftName": "drift", "runId": "r1"}
        })
    };
    let mut batch: Vec<Value> = serde_json::from_str(&model_registered("good-1")).expect("json");
    batch.push(drift("drift-1"));
    batch.push(drift("drift-2"));
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/api/events?code={}", common::fort::SECRET))
        .json(&batch)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["accepted"], 3);
    common::fort::wait("all three delivered", || sink.received().len() == 3).await;
    let drifts: Vec<Value> = sink
        .received()
        .iter()
        .map(|r| r.json())
        .filter(|j| j["id"] != "good-1")
        .collect();
    for echo in &drifts {
        assert_eq!(echo["kind"], "other", "{echo}");
        assert_eq!(echo["data"], drift("x")["data"], "data-json untouched");
    }
    let text = metrics(&client, &base).await;
    assert!(
        text.lines()
            .any(|l| l == "gridlet_events_untyped_total{event_type=\"DatasetDriftDetected\"} 2"),
        "{text}"
    );
    let log = log.lock().expect("log").clone();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("does not fit its typed record"))
        .collect();
    assert_eq!(lines.len(), 1, "logged once per type: {log}");
    assert!(lines[0].contains("`data.driftCoefficient` is missing"));
}
