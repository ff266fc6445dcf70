//! The typed event model: both casings, numeric and string versions, nulls,
//! unknown fields and types, both schemas, and each malformed case with its
//! exact error message.

mod common;

use common::{event, events};
use gridlet::event::{
    DocumentError, EventError, MlEvent, Schema, parse_cloud_event, parse_document, parse_event_grid,
};
use serde_json::json;

#[test]
fn camel_case_model_registered() {
    let e = event("eventgrid/model-registered.json");
    assert_eq!(e.id, "d9c2e4f0-3b56-4c7d-8e9f-0a1b2c3d4e5f");
    assert_eq!(
        e.event_type,
        "Microsoft.MachineLearningServices.ModelRegistered"
    );
    assert_eq!(e.subject, "models/fraud-gbm:7");
    assert_eq!(e.event_time, "2026-11-28T02:20:31.5550001+00:00");
    assert_eq!(e.data_version, "2");
    assert_eq!(e.schema, Schema::EventGrid);
    let MlEvent::ModelRegistered(m) = &e.data else {
        panic!("{:?}", e.data)
    };
    assert_eq!(m.model_name, "fraud-gbm");
    assert_eq!(m.model_version, "7");
    assert_eq!(
        m.model_tags,
        vec![
            ("stage".into(), "prod".into()),
            ("owner".into(), "risk".into())
        ]
    );
    assert_eq!(m.model_properties, vec![("auc".into(), "0.947".into())]);
}

#[test]
fn pascal_case_with_a_numeric_version() {
    let e = event("eventgrid/model-registered-pascalcase.json");
    let MlEvent::ModelRegistered(m) = &e.data else {
        panic!("{:?}", e.data)
    };
    assert_eq!(m.model_name, "fraud-gbm");
    assert_eq!(m.model_version, "8", "numeric version arrives as text");
    assert_eq!(m.model_tags, vec![("stage".into(), "staging".into())]);
    assert!(m.model_properties.is_empty());
    assert_eq!(e.data_version, "");
}

#[test]
fn run_events_with_tags_properties_and_status() {
    let e = event("eventgrid/run-completed.json");
    let MlEvent::RunCompleted(r) = &e.data else {
        panic!("{:?}", e.data)
    };
    assert_eq!(r.experiment_id, "5f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0");
    assert_eq!(r.experiment_name, "fraud-gbm-nightly");
    assert_eq!(r.run_id, "fraud-gbm-nightly_1732790400_7c1e9a2b");
    assert_eq!(r.run_type.as_deref(), Some("azureml.scriptrun"));
    assert_eq!(r.run_tags.len(), 2);
    assert_eq!(
        r.run_properties[0],
        ("azureml.git.commit".into(), "9b8c7d6".into())
    );

    let e = event("eventgrid/run-status-changed-failed.json");
    let MlEvent::RunStatusChanged(s) = &e.data else {
        panic!("{:?}", e.data)
    };
    assert_eq!(s.run_status, "Failed");
    assert_eq!(s.run.run_id, "fraud-gbm-nightly_1732876800_1d2e3f4a");
}

#[test]
fn model_deployed_splits_model_ids() {
    let e = event("eventgrid/model-deployed.json");
    let MlEvent::ModelDeployed(d) = &e.data else {
        panic!("{:?}", e.data)
    };
    assert_eq!(d.service_name, "fraud-scoring-aks");
    assert_eq!(d.service_compute_type, "AKS");
    assert_eq!(d.model_ids, vec!["fraud-gbm:7", "fraud-featurizer:3"]);
    assert_eq!(d.service_tags, vec![("tier".into(), "gold".into())]);
    assert_eq!(d.service_properties, vec![("replicas".into(), "3".into())]);

    let messy = parse_event_grid(
        &json!({"id": "1", "eventType": "Microsoft.MachineLearningServices.ModelDeployed", "subject": "endpoints/x",
                "data": {"ModelIds": " a:1 ,, b:2 ,", "ServiceName": "x"}}),
        0,
    )
    .expect("parses");
    let MlEvent::ModelDeployed(d) = &messy.data else {
        panic!()
    };
    assert_eq!(
        d.model_ids,
        vec!["a:1", "b:2"],
        "blanks trimmed, empty items dropped"
    );
    assert_eq!(d.service_compute_type, "", "absent strings read as empty");
}

#[test]
fn dataset_drift_detected() {
    let e = event("eventgrid/dataset-drift-detected.json");
    let MlEvent::DatasetDriftDetected(d) = &e.data else {
        panic!("{:?}", e.data)
    };
    assert_eq!(d.data_drift_name, "tx-features-weekly");
    assert_eq!(d.drift_coefficient, 0.6125);
    assert_eq!(d.base_dataset_id, "11111111-2222-4333-8444-555555555555");
    assert_eq!(d.target_dataset_id, "66666666-7777-4888-8999-aaaaaaaaaaaa");
    assert_eq!(d.start_time, "2026-11-20T00:00:00+00:00");
    assert_eq!(d.end_time, "2026-11-27T00:00:00+00:00");
}

#[test]
fn mixed_batch_with_unknown_types_fields_and_nulls() {
    let all = events("eventgrid/batch-mixed.json");
    assert_eq!(all.len(), 4);
    assert!(matches!(all[0].data, MlEvent::ModelRegistered(_)));
    // Unknown type: passed through with its raw data.
    assert_eq!(
        all[1].event_type,
        "Microsoft.MachineLearningServices.ModelArchived"
    );
    assert_eq!(all[1].data, MlEvent::Other);
    assert_eq!(all[1].data_value()["archivedBy"], "retention-policy");
    assert!(
        all[1]
            .data_json()
            .contains("\"archivedBy\":\"retention-policy\"")
    );
    // Null runType, empty tags, unknown data and envelope fields.
    let MlEvent::RunCompleted(r) = &all[2].data else {
        panic!("{:?}", all[2].data)
    };
    assert_eq!(r.run_type, None);
    assert!(r.run_tags.is_empty());
    assert!(matches!(all[3].data, MlEvent::DatasetDriftDetected(_)));
}

#[test]
fn non_string_tag_values_are_kept_as_json_text() {
    let e = parse_event_grid(
        &json!({"id": "1", "eventType": "Microsoft.MachineLearningServices.ModelRegistered", "subject": "models/m:1",
                "data": {"modelName": "m", "modelVersion": 1,
                         "modelTags": {"n": 3, "b": true, "o": {"a": [1, 2]}, "z": null, "s": "x"}}}),
        0,
    )
    .expect("parses");
    let MlEvent::ModelRegistered(m) = &e.data else {
        panic!()
    };
    assert_eq!(
        m.model_tags,
        vec![
            ("n".into(), "3".into()),
            ("b".into(), "true".into()),
            ("o".into(), r#"{"a":[1,2]}"#.into()),
            ("z".into(), "null".into()),
            ("s".into(), "x".into()),
        ]
    );
}

#[test]
fn keys_match_in_any_case_and_exact_spelling_wins() {
    let e = parse_event_grid(
        &json!({"id": "1", "eventType": "microsoft.machinelearningservices.runstatuschanged", "subject": "s",
                "data": {"RUNSTATUS": "shouting", "runStatus": "failed", "ExperimentName": "e"}}),
        0,
    )
    .expect("parses");
    let MlEvent::RunStatusChanged(s) = &e.data else {
        panic!("{:?}", e.data)
    };
    assert_eq!(s.run_status, "failed");
    assert_eq!(s.run.experiment_name, "e");
}

#[test]
fn drift_coefficient_as_a_numeric_string_is_read() {
    let e = parse_event_grid(
        &json!({"id": "1", "eventType": "Microsoft.MachineLearningServices.DatasetDriftDetected", "subject": "s",
                "data": {"DriftCoefficient": "0.25"}}),
        0,
    )
    .expect("parses");
    let MlEvent::DatasetDriftDetected(d) = &e.data else {
        panic!()
    };
    assert_eq!(d.drift_coefficient, 0.25);
}

#[test]
fn cloudevents_map_onto_the_same_model() {
    let ce = event("cloudevents/model-registered.json");
    let eg = event("eventgrid/model-registered.json");
    assert_eq!(ce.schema, Schema::CloudEvents);
    assert_eq!(ce.id, eg.id);
    assert_eq!(ce.topic, eg.topic, "source → topic");
    assert_eq!(ce.event_type, eg.event_type, "type → eventType");
    assert_eq!(ce.event_time, eg.event_time, "time → eventTime");
    assert_eq!(ce.subject, eg.subject);
    assert_eq!(ce.data, eg.data);
    assert_eq!(ce.data_version, "");

    let batch = events("cloudevents/batch.json");
    assert_eq!(batch.len(), 2);
    assert!(matches!(batch[0].data, MlEvent::RunStatusChanged(_)));
    assert!(matches!(batch[1].data, MlEvent::ModelDeployed(_)));
}

fn eg_error(value: serde_json::Value) -> String {
    parse_event_grid(&value, 3)
        .expect_err("refused")
        .to_string()
}

#[test]
fn malformed_event_grid_events_name_the_event_and_the_field() {
    let t = "Microsoft.MachineLearningServices.ModelRegistered";
    let cases = [
        (json!("x"), "event 3: must be a JSON object, found a string"),
        (
            json!({"eventType": t, "subject": "s"}),
            "event 3: `id` is missing",
        ),
        (
            json!({"id": null, "eventType": t, "subject": "s"}),
            "event 3: `id` is missing",
        ),
        (
            json!({"id": "", "eventType": t, "subject": "s"}),
            "event 3: `id` must not be empty",
        ),
        (
            json!({"id": 7, "eventType": t, "subject": "s"}),
            "event 3: `id` must be a string, found a number",
        ),
        (
            json!({"id": "a", "subject": "s"}),
            "event 3 (id a): `eventType` is missing",
        ),
        (
            json!({"id": "a", "eventType": ["x"], "subject": "s"}),
            "event 3 (id a): `eventType` must be a string, found an array",
        ),
        (
            json!({"id": "a", "eventType": t}),
            "event 3 (id a): `subject` is missing",
        ),
        (
            json!({"id": "a", "eventType": t, "subject": false}),
            "event 3 (id a): `subject` must be a string, found a boolean",
        ),
        (
            json!({"id": "a", "eventType": t, "subject": "s", "topic": 1}),
            "event 3 (id a): `topic` must be a string, found a number",
        ),
        (
            json!({"id": "a", "eventType": t, "subject": "s", "eventTime": {}}),
            "event 3 (id a): `eventTime` must be a string, found an object",
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(eg_error(value.clone()), expected, "{value}");
    }
}

/// Data that does not fit its type's record never refuses the event (a 400
/// would lose the whole batch: Event Grid does not retry it): the event is
/// accepted untyped, its data untouched, and the reason kept.
#[test]
fn data_that_does_not_fit_its_record_is_accepted_untyped() {
    let t = "Microsoft.MachineLearningServices.ModelRegistered";
    let drift = "Microsoft.MachineLearningServices.DatasetDriftDetected";
    let cases = [
        (
            json!({"id": "a", "eventType": t, "subject": "s", "data": [1]}),
            "`data` must be an object for Microsoft.MachineLearningServices.ModelRegistered, found an array",
        ),
        (
            json!({"id": "a", "eventType": t, "subject": "s", "data": {"modelTags": "stage=prod"}}),
            "`data.modelTags` must be an object, found a string",
        ),
        (
            json!({"id": "a", "eventType": "Microsoft.MachineLearningServices.ModelDeployed", "subject": "s", "data": {"modelIds": 5}}),
            "`data.modelIds` must be a comma-separated string, found a number",
        ),
        (
            json!({"id": "a", "eventType": drift, "subject": "s", "data": {"dataDriftId": "d1"}}),
            "`data.driftCoefficient` is missing",
        ),
        (
            json!({"id": "a", "eventType": drift, "subject": "s", "data": {"driftCoefficient": "high"}}),
            "`data.driftCoefficient` must be a number, found the string \"high\"",
        ),
    ];
    for (value, problem) in cases {
        let event = parse_event_grid(&value, 0).expect("accepted");
        assert_eq!(event.data, MlEvent::Other, "{value}");
        assert_eq!(event.data_problem.as_deref(), Some(problem), "{value}");
        assert_eq!(event.data_json(), value["data"].to_string(), "{value}");
        // Its metric label is still its type, not `Other`.
        assert_ne!(event.type_label(), "Other", "{value}");
    }
    let typed = parse_event_grid(
        &json!({"id": "a", "eventType": drift, "subject": "s", "data": {"driftCoefficient": 0.5}}),
        0,
    )
    .expect("accepted");
    assert!(typed.data_problem.is_none());
    assert_eq!(typed.type_label(), "DatasetDriftDetected");
}

#[test]
fn errors_carry_the_field_for_problem_bodies() {
    let error: EventError =
        parse_event_grid(&json!({"id": "a", "subject": "s"}), 0).expect_err("refused");
    assert_eq!(error.index, 0);
    assert_eq!(error.id.as_deref(), Some("a"));
    assert_eq!(error.field.as_deref(), Some("eventType"));
}

#[test]
fn malformed_cloudevents_name_the_attribute() {
    let ok = json!({"specversion": "1.0", "id": "a", "source": "/s", "type": "t"});
    assert!(
        parse_cloud_event(&ok, 0).is_ok(),
        "subject and time are optional"
    );
    let cases = [
        (
            json!({"specversion": "1.0", "source": "/s", "type": "t"}),
            "event 0: `id` is missing",
        ),
        (
            json!({"id": "a", "source": "/s", "type": "t"}),
            "event 0 (id a): `specversion` is missing",
        ),
        (
            json!({"specversion": "0.3", "id": "a", "source": "/s", "type": "t"}),
            "event 0 (id a): `specversion` must be \"1.0\", found \"0.3\"",
        ),
        (
            json!({"specversion": "1.0", "id": "a", "source": "/s"}),
            "event 0 (id a): `type` is missing",
        ),
        (
            json!({"specversion": "1.0", "id": "a", "type": "t"}),
            "event 0 (id a): `source` is missing",
        ),
        (
            json!({"specversion": "1.0", "id": "a", "source": "/s", "type": "t", "data_base64": "AA=="}),
            "event 0 (id a): `data_base64` binary data is not supported: send the data as JSON in `data`",
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(
            parse_cloud_event(&value, 0)
                .expect_err("refused")
                .to_string(),
            expected,
            "{value}"
        );
    }
}

#[test]
fn malformed_documents() {
    let cases: [(&[u8], &str); 5] = [
        (
            b"{\"id\": ",
            "body is not valid JSON: EOF while parsing a value at line 1 column 7",
        ),
        (
            b"",
            "body is not valid JSON: EOF while parsing a value at line 1 column 0",
        ),
        (
            b"42",
            "body must be a JSON array of events or a single event object, found a number",
        ),
        (
            b"[]",
            "body is an empty array: there is no event to deliver",
        ),
        (
            b"[{\"id\":\"a\",\"eventType\":\"t\",\"subject\":\"s\"}, 1]",
            "event 1: must be a JSON object, found a number",
        ),
    ];
    for (bytes, expected) in cases {
        let error: DocumentError = parse_document(bytes).expect_err("refused");
        assert_eq!(
            error.to_string(),
            expected,
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn every_sample_file_parses() {
    let dir = common::root().join("examples/events");
    for schema in ["eventgrid", "cloudevents"] {
        for entry in std::fs::read_dir(dir.join(schema)).expect("dir") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            let parsed = parse_document(&bytes);
            assert!(parsed.is_ok(), "{}: {:?}", path.display(), parsed.err());
        }
    }
}

/// An event nested as deep as the JSON parser allows is accepted, with its
/// data exactly as sent; one level deeper is refused with the parser's
/// reason, whether the depth is in `data` or in an extension attribute.
#[test]
fn nesting_depth_is_limited_per_event() {
    let nested = |levels: usize| {
        let mut v = "[\"]}\\\"[\"]".to_string();
        for _ in 1..levels {
            v = format!("{{\"a\": {v}}}");
        }
        v
    };
    for member in ["data", "extra"] {
        // The event's own object is one level; the member takes the rest.
        let text = |levels: usize| {
            format!(
                r#"{{"id": "d", "eventType": "Custom.Deep", "subject": "s", "{member}": {}}}"#,
                nested(levels)
            )
        };
        let event = gridlet::event::event_grid_from_text(&text(126), 0).expect("127 levels");
        if member == "data" {
            assert_eq!(event.data_json(), nested(126));
        }
        let deeper = text(127);
        let error = gridlet::event::event_grid_from_text(&deeper, 0)
            .expect_err("128 levels")
            .to_string();
        // serde_json's words, at the 128th bracket (`{"a": ` is 6 bytes).
        let column = deeper.find(&nested(127)).expect("inside") + 126 * 6 + 1;
        assert_eq!(
            error,
            format!(
                "event 0: is not valid JSON: recursion limit exceeded at line 1 column {column}"
            )
        );
    }
    // Brackets inside strings are text, however many.
    let brackets = "[{".repeat(300);
    let text = format!(
        r#"{{"id": "b", "eventType": "Custom.Text", "subject": "{brackets}", "data": {{"s": "\"{brackets}"}}}}"#
    );
    let event = gridlet::event::event_grid_from_text(&text, 0).expect("flat event");
    assert_eq!(event.subject, brackets);
}

/// Member names a sender chooses: a repeated name counts once, the last
/// one (as in a JSON map), and an escaped name is the name it spells.
#[test]
fn repeated_and_escaped_member_names_read_as_in_a_map() {
    let text = r#"{"id": 7, "\u0069d": "second", "eventType": "Custom.T", "subject": "s",
        "data": {"first": true}, "data": {"last": true}, "subject": "last"}"#;
    let event = gridlet::event::event_grid_from_text(text, 0).expect("valid event");
    assert_eq!(event.id, "second");
    assert_eq!(event.subject, "last");
    assert_eq!(event.data_json(), r#"{"last": true}"#);
    // The earlier, wrongly typed `id` no longer counts; a later one does.
    let error = gridlet::event::event_grid_from_text(
        r#"{"id": "a", "eventType": "Custom.T", "subject": "s", "id": 7}"#,
        0,
    )
    .expect_err("a number id")
    .to_string();
    assert_eq!(error, "event 0: `id` must be a string, found a number");
}
