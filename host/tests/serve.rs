//! `gridlet serve` end to end: a real server on an ephemeral port with real
//! plugins, fed every sample delivery in both schemas and all three
//! CloudEvents modes; handshakes, auth, topics, limits and malformed bodies
//! get their documented status and body, and reach no plugin.

mod common;

use common::Received;
use common::webhook::{Host, SECRET, WORKSPACE, echo, echoes, sample};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

#[tokio::test]
async fn every_event_grid_sample_reaches_exactly_the_matching_plugins() {
    let host = Host::start(|_| {}).await;
    for file in [
        "run-completed.json",
        "run-status-changed-failed.json",
        "model-registered.json",
        "model-registered-pascalcase.json",
        "model-deployed.json",
        "dataset-drift-detected.json",
    ] {
        let (status, _, body) = host.event_grid(sample(&format!("eventgrid/{file}"))).await;
        assert_eq!(status, 200, "{file}: {body}");
        assert_eq!(body["accepted"], 1, "{file}");
    }
    let echoed = echoes(&host.settled("/echo").await);
    let mut expected = vec![
        echo(
            "echo-all",
            "b7a0c2de-1f34-4a5b-8c6d-7e8f9a0b1c2d",
            "run-completed",
        ),
        echo(
            "echo-all",
            "c8b1d3ef-2a45-4b6c-9d7e-8f9a0b1c2d3e",
            "run-status-changed",
        ),
        echo(
            "echo-all",
            "d9c2e4f0-3b56-4c7d-8e9f-0a1b2c3d4e5f",
            "model-registered",
        ),
        echo(
            "echo-all",
            "e0d3f5a1-4c67-4d8e-9f0a-1b2c3d4e5f60",
            "model-registered",
        ),
        echo(
            "echo-all",
            "f1e4a6b2-5d78-4e9f-8a1b-2c3d4e5f6071",
            "model-deployed",
        ),
        echo(
            "echo-all",
            "a2f5b7c3-6e89-4f0a-9b2c-3d4e5f607182",
            "dataset-drift-detected",
        ),
        echo(
            "echo-models",
            "d9c2e4f0-3b56-4c7d-8e9f-0a1b2c3d4e5f",
            "model-registered",
        ),
        echo(
            "echo-models",
            "e0d3f5a1-4c67-4d8e-9f0a-1b2c3d4e5f60",
            "model-registered",
        ),
    ];
    expected.sort();
    assert_eq!(echoed, expected);
    // The failed run paged the chat; the prod model (not the staging one) was deployed.
    let chat = host.settled("/chat").await;
    assert_eq!(chat.len(), 1);
    assert_eq!(
        chat[0].json()["runId"],
        "fraud-gbm-nightly_1732876800_1d2e3f4a"
    );
    let deploy = host.settled("/deploy").await;
    assert_eq!(deploy.len(), 1);
    assert_eq!(deploy[0].json()["version"], "7");
    // 6 events: echo-all 6, echo-models 2, failed-run-alert 1 (its filter), model-promotion 6
    // (no filter in this manifest: the plugin itself ignores what is not ModelRegistered).
    assert_eq!(host.deliveries(), 15);
}

#[tokio::test]
async fn a_mixed_batch_with_unknown_types_is_delivered_whole() {
    let host = Host::start(|_| {}).await;
    let (status, _, body) = host.event_grid(sample("eventgrid/batch-mixed.json")).await;
    assert_eq!(status, 200, "{body}");
    // echo-all 4, echo-models 1, failed-run-alert 0, model-promotion 4.
    assert_eq!(body, json!({"accepted": 4, "deliveries": 9}));
    let echoed = host.settled("/echo").await;
    let all: Vec<_> = echoed
        .iter()
        .map(Received::json)
        .filter(|j| j["plugin"] == "echo-all")
        .collect();
    assert_eq!(all.len(), 4);
    let archived = all
        .iter()
        .find(|j| j["eventType"] == "Microsoft.MachineLearningServices.ModelArchived")
        .expect("unknown type delivered");
    assert_eq!(archived["kind"], "other");
    assert_eq!(archived["data"]["archivedBy"], "retention-policy");
}

#[tokio::test]
async fn cloudevents_in_all_three_modes() {
    let host = Host::start(|_| {}).await;
    let q = format!("?code={SECRET}");
    // Structured: one event.
    let (status, _, body) = host
        .post(
            &q,
            &[(
                "content-type",
                "application/cloudevents+json; charset=utf-8",
            )],
            sample("cloudevents/model-registered.json"),
        )
        .await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (200, json!(1)),
        "{body}"
    );
    // Structured, tolerating an array.
    let (status, _, body) = host
        .post(
            &q,
            &[("content-type", "application/cloudevents+json")],
            sample("cloudevents/batch.json"),
        )
        .await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (200, json!(2)),
        "{body}"
    );
    // Batched: the same two events again are duplicates (same source and id),
    // acknowledged and not delivered twice; with new ids they are delivered.
    let (status, _, body) = host
        .post(
            &q,
            &[("content-type", "application/cloudevents-batch+json")],
            sample("cloudevents/batch.json"),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"accepted": 2, "deliveries": 0}))
    );
    let renamed = String::from_utf8(sample("cloudevents/batch.json"))
        .expect("utf8")
        .replace("c8b1d3ef-2a45-4b6c-9d7e-8f9a0b1c2d3e", "batched-1")
        .replace("f1e4a6b2-5d78-4e9f-8a1b-2c3d4e5f6071", "batched-2");
    let (status, _, body) = host
        .post(
            &q,
            &[("content-type", "application/cloudevents-batch+json")],
            renamed,
        )
        .await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (200, json!(2)),
        "{body}"
    );
    // Binary: attributes in percent-encoded ce-* headers (one quoted), data as the body.
    let data = json!({"modelName": "fraud gbm", "modelVersion": 9, "modelTags": {"stage": "dev"}});
    let (status, _, body) = host
        .post(
            &q,
            &[
                ("content-type", "application/json"),
                ("ce-specversion", "1.0"),
                ("ce-id", "binary-1"),
                (
                    "ce-source",
                    &WORKSPACE.replace("fraud-detection", "fraud%2Ddetection"),
                ),
                (
                    "ce-type",
                    "Microsoft.MachineLearningServices.ModelRegistered",
                ),
                ("ce-subject", "\"models/fraud%20gbm:9\""),
                ("ce-time", "2026-11-28T06:00:00Z"),
            ],
            data.to_string(),
        )
        .await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (200, json!(1)),
        "{body}"
    );

    let echoed: Vec<Value> = host
        .settled("/echo")
        .await
        .iter()
        .map(Received::json)
        .filter(|j| j["plugin"] == "echo-all")
        .collect();
    assert_eq!(echoed.len(), 6);
    let binary = echoed
        .iter()
        .find(|j| j["id"] == "binary-1")
        .expect("binary event delivered");
    assert_eq!(
        binary["topic"], WORKSPACE,
        "source → topic, percent-decoded"
    );
    assert_eq!(
        binary["subject"], "models/fraud gbm:9",
        "quotes removed, %20 decoded"
    );
    assert_eq!(
        binary["eventType"],
        "Microsoft.MachineLearningServices.ModelRegistered"
    );
    assert_eq!(binary["eventTime"], "2026-11-28T06:00:00Z");
    assert_eq!(binary["kind"], "model-registered");
    assert_eq!(binary["data"], data);
    let structured = echoed
        .iter()
        .find(|j| j["id"] == "d9c2e4f0-3b56-4c7d-8e9f-0a1b2c3d4e5f")
        .expect("structured");
    assert_eq!(structured["topic"], WORKSPACE);
    assert_eq!(structured["dataVersion"], "");
}

#[tokio::test]
async fn binary_mode_refuses_invalid_utf8_after_percent_decoding() {
    let host = Host::start(|_| {}).await;
    let (status, _, body) = host
        .post(
            &format!("?code={SECRET}"),
            &[
                ("content-type", "application/json"),
                ("ce-specversion", "1.0"),
                ("ce-id", "x%C0%A0"),
                ("ce-source", WORKSPACE),
                ("ce-type", "t"),
            ],
            "{}",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["detail"],
        "header `ce-id` percent-decodes to invalid UTF-8"
    );
    assert_eq!(host.deliveries(), 0);
}

#[tokio::test]
async fn the_event_grid_validation_handshake() {
    let host = Host::start(|_| {}).await;
    let q = format!("?code={SECRET}");
    let body = sample("eventgrid/subscription-validation.json");
    let (status, headers, answer) = host
        .post(
            &q,
            &[
                ("content-type", "application/json"),
                ("aeg-event-type", "SubscriptionValidation"),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        answer,
        json!({"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
    );
    // Recognised by the event type alone, too.
    let (status, _, answer) = host
        .post(&q, &[("content-type", "application/json")], body)
        .await;
    assert_eq!(
        (status, answer),
        (
            200,
            json!({"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
        )
    );
    // Without a code it is a clear 400.
    let (status, _, answer) = host
        .post(&q, &[("aeg-event-type", "SubscriptionValidation")], r#"[{"id":"v","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","subject":"","data":{}}]"#)
        .await;
    assert_eq!(status, 400);
    assert_eq!(answer["field"], "data.validationCode");
    assert_eq!(host.deliveries(), 0, "no plugin sees a handshake");
}

#[tokio::test]
async fn the_cloudevents_options_handshake() {
    let host = Host::start(|s| s.ingest.allowed_rate = Some(120)).await;
    let options = |origin: Option<&'static str>, query: String| {
        let mut r = host
            .client
            .request(reqwest::Method::OPTIONS, host.url(&query));
        if let Some(o) = origin {
            r = r.header("webhook-request-origin", o);
        }
        r.send()
    };
    let granted = options(Some("eventgrid.azure.net"), format!("?code={SECRET}"))
        .await
        .expect("options");
    assert_eq!(granted.status(), 200);
    assert_eq!(
        granted.headers()["webhook-allowed-origin"],
        "eventgrid.azure.net"
    );
    assert_eq!(granted.headers()["webhook-allowed-rate"], "120");
    assert_eq!(granted.headers()["allow"], "POST, OPTIONS");

    let refused = options(Some("evil.example.com"), format!("?code={SECRET}"))
        .await
        .expect("options");
    assert_eq!(refused.status(), 403);
    assert!(refused.headers().get("webhook-allowed-origin").is_none());
    let body: Value = serde_json::from_str(&refused.text().await.expect("body")).expect("json");
    assert_eq!(
        body["detail"],
        "origin `evil.example.com` is not in allowed_origins"
    );

    let missing = options(None, format!("?code={SECRET}"))
        .await
        .expect("options");
    assert_eq!(missing.status(), 400);
    let unauthorized = options(Some("eventgrid.azure.net"), String::new())
        .await
        .expect("options");
    assert_eq!(unauthorized.status(), 401);
}

#[tokio::test]
async fn auth_failures_are_401_with_no_hint_and_deliver_nothing() {
    let host = Host::start(|_| {}).await;
    let body = sample("eventgrid/model-registered.json");
    let expected = json!({
        "type": "unauthorized",
        "title": "Missing or invalid credentials",
        "status": 401,
        "detail": "this endpoint needs valid credentials"
    });
    for (query, headers) in [
        ("".to_string(), vec![]),
        ("?code=wrong".to_string(), vec![]),
        (format!("?code={SECRET}x"), vec![]),
        (format!("?key={SECRET}"), vec![]),
        ("".to_string(), vec![("x-gridlet-secret", "wrong")]),
        ("".to_string(), vec![("authorization", "Bearer wrong")]),
    ] {
        let (status, headers_back, answer) = host.post(&query, &headers, body.clone()).await;
        assert_eq!(status, 401, "{query} {headers:?}");
        assert_eq!(headers_back["content-type"], "application/problem+json");
        assert_eq!(answer, expected);
        assert!(!answer.to_string().contains(SECRET));
    }
    assert_eq!(host.deliveries(), 0);
    // Accepted: the secret in the query, in the header, and the second secret.
    for (query, headers) in [
        (format!("?code={SECRET}"), vec![]),
        ("?code=the-next-secret".to_string(), vec![]),
        ("?a=1&code=s3cret%2DEvent%2DGrid%2Dkey".to_string(), vec![]),
        ("".to_string(), vec![("x-gridlet-secret", SECRET)]),
        (
            "".to_string(),
            vec![("x-gridlet-secret", "Bearer the-next-secret")],
        ),
    ] {
        let (status, _, answer) = host.post(&query, &headers, body.clone()).await;
        assert_eq!(status, 200, "{query} {headers:?}: {answer}");
    }
    // Health needs no auth.
    let health = host
        .client
        .get(format!("http://{}/healthz", host.server.addr))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_forbidden_topic_is_403_before_anything_else() {
    let host = Host::start(|_| {}).await;
    let mut batch: Value =
        serde_json::from_slice(&sample("eventgrid/batch-mixed.json")).expect("json");
    batch[2]["topic"] = "/subscriptions/x/resourceGroups/other/providers/Microsoft.MachineLearningServices/workspaces/theirs".into();
    let (status, _, body) = host.event_grid(batch.to_string()).await;
    assert_eq!(status, 403);
    assert_eq!(body["type"], "forbidden-topic");
    assert_eq!(body["eventIndex"], 2);
    assert_eq!(body["field"], "topic");
    assert_eq!(
        body["detail"],
        "event 2: topic `/subscriptions/x/resourceGroups/other/providers/Microsoft.MachineLearningServices/workspaces/theirs` is not in allowed_topics"
    );
    // Topics compare without case.
    let upper = String::from_utf8(sample("eventgrid/model-registered.json"))
        .expect("utf8")
        .replace("fraud-detection", "FRAUD-DETECTION");
    let (status, _, _) = host.event_grid(upper).await;
    assert_eq!(status, 200);
    assert_eq!(
        host.settled("/echo").await.len(),
        2,
        "only the allowed event was delivered (to both echo plugins)"
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_and_a_batch_is_all_or_nothing() {
    let host = Host::start(|_| {}).await;
    let cases: Vec<(String, &str, Value)> = vec![
        ("{\"id\": ".into(), "malformed-json", json!("body is not valid JSON: EOF while parsing a value at line 1 column 7")),
        (r#"{"id":"a","eventType":"t","subject":"s"}"#.into(), "not-an-array", json!("an Event Grid delivery must be a JSON array of events, found an object")),
        ("[]".into(), "empty-batch", json!("body is an empty array: there is no event to deliver")),
        (r#"[{"id":"a","eventType":"Microsoft.MachineLearningServices.RunCompleted","subject":"s","data":{},"topic":"/subscriptions/7d3c1b2a-5e4f-4a8b-9c0d-1e2f3a4b5c6d/resourceGroups/ml-prod/providers/Microsoft.MachineLearningServices/workspaces/fraud-detection"},{"id":"b","subject":"s"}]"#.into(),
            "invalid-event", json!("event 1 (id b): `eventType` is missing")),
    ];
    for (body, kind, detail) in cases {
        let (status, headers, answer) = host.event_grid(body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(answer["type"], kind, "{body}");
        assert_eq!(answer["detail"], detail, "{body}");
    }
    let (_, _, answer) = host
        .event_grid(r#"[{"id":"a","eventType":"t","subject":"s"},{"id":"b","subject":"s"}]"#)
        .await;
    assert_eq!(
        (
            answer["eventIndex"].clone(),
            answer["eventId"].clone(),
            answer["field"].clone()
        ),
        (json!(1), json!("b"), json!("eventType"))
    );
    let too_many: Vec<Value> = (0..5001)
        .map(|i| json!({"id": i.to_string(), "eventType": "t", "subject": "s"}))
        .collect();
    let (status, _, answer) = host.event_grid(Value::Array(too_many).to_string()).await;
    assert_eq!(
        (status, answer["detail"].clone()),
        (400, json!("the batch holds 5001 events; at most 5000"))
    );
    assert_eq!(
        host.deliveries(),
        0,
        "nothing from a refused body reaches a plugin"
    );
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let host = Host::start(|s| s.ingest.body_limit = 64 * 1024).await;
    let big = format!(
        r#"[{{"id":"a","eventType":"t","subject":"s","data":{{"pad":"{}"}}}}]"#,
        "x".repeat(70 * 1024)
    );
    let (status, _, answer) = host.event_grid(big.clone()).await;
    assert_eq!(status, 413);
    assert_eq!(answer["type"], "payload-too-large");
    assert_eq!(
        answer["detail"],
        format!("the body is {} bytes; the limit is 65536 bytes", big.len())
    );
    // Streamed (chunked, no Content-Length), it is refused too.
    assert_eq!(
        chunked_post(&host, big.as_bytes()).await,
        "HTTP/1.1 413 Payload Too Large"
    );
    assert_eq!(host.deliveries(), 0);
}

/// POST with `Transfer-Encoding: chunked` over a raw connection; the status line.
async fn chunked_post(host: &Host, body: &[u8]) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = tokio::net::TcpStream::connect(host.server.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/events?code={SECRET} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let _ = stream.write_all(head.as_bytes()).await;
    for chunk in body.chunks(8192) {
        // The server may answer and close before the body ends: stop writing then.
        if stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
            || stream.write_all(chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .await
        .expect("status line");
    line.trim_end().to_string()
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_stores_nothing() {
    let host = Host::start(|s| {
        s.dispatch.queue_capacity = 1;
        s.dispatch.retry_after_secs = 7;
    })
    .await;
    // One ModelRegistered event makes 3 deliveries (echo-all, echo-models, model-promotion).
    let (status, headers, answer) = host
        .event_grid(sample("eventgrid/model-registered.json"))
        .await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(answer["retryAfter"], 7);
    assert_eq!(
        answer["detail"],
        "3 more deliveries would pass the bound of 1 pending (0 pending now)"
    );
    assert_eq!(host.deliveries(), 0);
    assert_eq!(
        host.server
            .dispatcher
            .stats()
            .refused
            .load(Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn aeg_headers_are_kept_with_the_event() {
    // Checked through the library: the webhook stores them on every event of the request.
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("aeg-subscription-name", "ML-ALERTS".parse().expect("h"));
    headers.insert("aeg-delivery-count", "2".parse().expect("h"));
    headers.insert("aeg-data-version", "2".parse().expect("h"));
    let request = gridlet::ingest::schema::read(&headers, &sample("eventgrid/batch-mixed.json"))
        .expect("reads");
    let gridlet::ingest::schema::Request::Events(events) = request else {
        panic!("events")
    };
    for e in &events {
        assert_eq!(e.delivery.subscription_name.as_deref(), Some("ML-ALERTS"));
        assert_eq!(e.delivery.delivery_count, Some(2));
        assert_eq!(e.delivery.data_version.as_deref(), Some("2"));
    }
}
