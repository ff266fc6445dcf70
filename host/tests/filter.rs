//! Event Grid filter semantics, table-driven: every operator, case rules,
//! arrays on and off, missing keys, nested keys, and the limits — 177 cases
//! in three tables (130 advanced-filter matches, 28 type/subject/AND
//! combinations, 19 refused filters) plus the at-the-limit checks.

use gridlet::event::{Event, parse_event_grid};
use gridlet::filter::{Filter, FilterSpec};
use serde_json::{Value, json};

fn event() -> Event {
    parse_event_grid(
        &json!({
            "id": "Evt-1",
            "topic": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/Fraud",
            "subject": "models/Fraud-GBM:7",
            "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
            "eventTime": "2026-11-28T02:20:31Z",
            "dataVersion": "2",
            "data": {
                "modelName": "Fraud-GBM",
                "modelVersion": 7,
                "score": 0.947,
                "approved": true,
                "owner": null,
                "modelTags": {"Stage": "Prod", "team": "risk", "Nested": {"Depth": {"Level": "three"}}},
                "sizes": [3, 10, 42],
                "labels": ["Alpha", "beta"],
                "mixed": ["x", 5, true],
                "empty": []
            }
        }),
        0,
    )
    .expect("test event parses")
}

fn filter(spec: Value) -> Result<Filter, String> {
    let spec: FilterSpec = serde_json::from_value(spec).map_err(|e| e.to_string())?;
    Filter::from_spec(&spec).map_err(|e| e.to_string())
}

fn advanced(op: &str, key: &str, values: Value, arrays: bool) -> Value {
    let mut f = json!({"operatorType": op, "key": key});
    match values {
        Value::Null => {}
        Value::Array(_)
            if !op.ends_with("Than") && !op.ends_with("Equals") && op != "BoolEquals" =>
        {
            f["values"] = values
        }
        v => f["value"] = v,
    }
    json!({"advancedFilters": [f], "enableAdvancedFilteringOnArrays": arrays})
}

#[test]
fn advanced_operators() {
    let e = event();
    // (operator, key, values or value, arrays enabled, expected)
    let cases: Vec<(&str, &str, Value, bool, bool)> = vec![
        // NumberIn / NumberNotIn
        ("NumberIn", "data.modelVersion", json!([7]), false, true),
        (
            "NumberIn",
            "data.modelVersion",
            json!([1, 2, 7.0]),
            false,
            true,
        ),
        ("NumberIn", "data.modelVersion", json!([8]), false, false),
        ("NumberIn", "data.score", json!([0.947]), false, true),
        ("NumberIn", "data.modelName", json!([7]), false, false),
        ("NumberIn", "data.missing", json!([7]), false, false),
        ("NumberIn", "data.owner", json!([0]), false, false),
        (
            "NumberNotIn",
            "data.modelVersion",
            json!([8, 9]),
            false,
            true,
        ),
        ("NumberNotIn", "data.modelVersion", json!([7]), false, false),
        ("NumberNotIn", "data.missing", json!([7]), false, true),
        ("NumberNotIn", "data.owner", json!([7]), false, true),
        // Single-value comparisons
        ("NumberLessThan", "data.modelVersion", json!(8), false, true),
        (
            "NumberLessThan",
            "data.modelVersion",
            json!(7),
            false,
            false,
        ),
        ("NumberLessThan", "data.missing", json!(7), false, false),
        (
            "NumberGreaterThan",
            "data.modelVersion",
            json!(6.5),
            false,
            true,
        ),
        (
            "NumberGreaterThan",
            "data.modelVersion",
            json!(7),
            false,
            false,
        ),
        ("NumberGreaterThan", "data.score", json!(0.9), false, true),
        ("NumberGreaterThan", "data.missing", json!(0), false, false),
        (
            "NumberLessThanOrEquals",
            "data.modelVersion",
            json!(7),
            false,
            true,
        ),
        (
            "NumberLessThanOrEquals",
            "data.modelVersion",
            json!(6),
            false,
            false,
        ),
        (
            "NumberLessThanOrEquals",
            "data.missing",
            json!(6),
            false,
            false,
        ),
        (
            "NumberGreaterThanOrEquals",
            "data.modelVersion",
            json!(7),
            false,
            true,
        ),
        (
            "NumberGreaterThanOrEquals",
            "data.modelVersion",
            json!(8),
            false,
            false,
        ),
        (
            "NumberGreaterThanOrEquals",
            "data.modelName",
            json!(0),
            false,
            false,
        ),
        // Ranges (both ends inclusive)
        (
            "NumberInRange",
            "data.modelVersion",
            json!([[1, 7]]),
            false,
            true,
        ),
        (
            "NumberInRange",
            "data.modelVersion",
            json!([[7, 9]]),
            false,
            true,
        ),
        (
            "NumberInRange",
            "data.modelVersion",
            json!([[1, 3], [8, 9]]),
            false,
            false,
        ),
        (
            "NumberInRange",
            "data.modelVersion",
            json!([[1, 3], [6, 9]]),
            false,
            true,
        ),
        (
            "NumberInRange",
            "data.missing",
            json!([[1, 9]]),
            false,
            false,
        ),
        (
            "NumberNotInRange",
            "data.modelVersion",
            json!([[1, 3]]),
            false,
            true,
        ),
        (
            "NumberNotInRange",
            "data.modelVersion",
            json!([[1, 7]]),
            false,
            false,
        ),
        (
            "NumberNotInRange",
            "data.missing",
            json!([[1, 3]]),
            false,
            false,
        ),
        // BoolEquals
        ("BoolEquals", "data.approved", json!(true), false, true),
        ("BoolEquals", "data.approved", json!(false), false, false),
        ("BoolEquals", "data.modelName", json!(true), false, false),
        ("BoolEquals", "data.missing", json!(false), false, false),
        // StringIn / StringNotIn, case-insensitive
        (
            "StringIn",
            "data.modelName",
            json!(["fraud-gbm"]),
            false,
            true,
        ),
        (
            "StringIn",
            "data.modelName",
            json!(["FRAUD-GBM"]),
            false,
            true,
        ),
        (
            "StringIn",
            "data.modelName",
            json!(["other", "Fraud-GBM"]),
            false,
            true,
        ),
        ("StringIn", "data.modelName", json!(["fraud"]), false, false),
        ("StringIn", "data.modelVersion", json!(["7"]), false, false),
        ("StringIn", "data.missing", json!(["x"]), false, false),
        (
            "StringNotIn",
            "data.modelName",
            json!(["other"]),
            false,
            true,
        ),
        (
            "StringNotIn",
            "data.modelName",
            json!(["FRAUD-gbm"]),
            false,
            false,
        ),
        ("StringNotIn", "data.missing", json!(["x"]), false, true),
        ("StringNotIn", "data.owner", json!(["x"]), false, true),
        // Contains
        (
            "StringContains",
            "data.modelName",
            json!(["gbm"]),
            false,
            true,
        ),
        (
            "StringContains",
            "data.modelName",
            json!(["GBM"]),
            false,
            true,
        ),
        (
            "StringContains",
            "data.modelName",
            json!(["xgb", "aud"]),
            false,
            true,
        ),
        (
            "StringContains",
            "data.modelName",
            json!(["xgb"]),
            false,
            false,
        ),
        ("StringContains", "data.missing", json!(["a"]), false, false),
        (
            "StringNotContains",
            "data.modelName",
            json!(["xgb"]),
            false,
            true,
        ),
        (
            "StringNotContains",
            "data.modelName",
            json!(["Fraud"]),
            false,
            false,
        ),
        (
            "StringNotContains",
            "data.missing",
            json!(["a"]),
            false,
            false,
        ),
        // BeginsWith / EndsWith
        (
            "StringBeginsWith",
            "data.modelName",
            json!(["fraud"]),
            false,
            true,
        ),
        (
            "StringBeginsWith",
            "data.modelName",
            json!(["gbm"]),
            false,
            false,
        ),
        (
            "StringBeginsWith",
            "data.missing",
            json!(["f"]),
            false,
            false,
        ),
        (
            "StringNotBeginsWith",
            "data.modelName",
            json!(["gbm"]),
            false,
            true,
        ),
        (
            "StringNotBeginsWith",
            "data.modelName",
            json!(["FRAUD"]),
            false,
            false,
        ),
        (
            "StringNotBeginsWith",
            "data.missing",
            json!(["f"]),
            false,
            false,
        ),
        (
            "StringEndsWith",
            "data.modelName",
            json!(["-GBM"]),
            false,
            true,
        ),
        (
            "StringEndsWith",
            "data.modelName",
            json!(["fraud"]),
            false,
            false,
        ),
        ("StringEndsWith", "data.missing", json!(["m"]), false, false),
        (
            "StringNotEndsWith",
            "data.modelName",
            json!(["fraud"]),
            false,
            true,
        ),
        (
            "StringNotEndsWith",
            "data.modelName",
            json!(["gbm"]),
            false,
            false,
        ),
        (
            "StringNotEndsWith",
            "data.missing",
            json!(["m"]),
            false,
            false,
        ),
        // Null checks
        (
            "IsNullOrUndefined",
            "data.missing",
            Value::Null,
            false,
            true,
        ),
        ("IsNullOrUndefined", "data.owner", Value::Null, false, true),
        (
            "IsNullOrUndefined",
            "data.modelName",
            Value::Null,
            false,
            false,
        ),
        (
            "IsNullOrUndefined",
            "data.modelTags.nope.deeper",
            Value::Null,
            false,
            true,
        ),
        ("IsNotNull", "data.modelName", Value::Null, false, true),
        ("IsNotNull", "data.owner", Value::Null, false, false),
        ("IsNotNull", "data.missing", Value::Null, false, false),
        // An array without enableAdvancedFilteringOnArrays fails every operator.
        ("IsNotNull", "data.empty", Value::Null, false, false),
        // Nested keys, matched ignoring case at every level
        (
            "StringIn",
            "data.modelTags.stage",
            json!(["prod"]),
            false,
            true,
        ),
        (
            "StringIn",
            "data.ModelTags.STAGE",
            json!(["PROD"]),
            false,
            true,
        ),
        (
            "StringIn",
            "data.modelTags.Nested.Depth.Level",
            json!(["three"]),
            false,
            true,
        ),
        (
            "StringIn",
            "data.modeltags.nested.depth.level",
            json!(["THREE"]),
            false,
            true,
        ),
        (
            "StringIn",
            "data.modelTags.Nested.Depth",
            json!(["three"]),
            false,
            false,
        ),
        (
            "StringIn",
            "data.modelName.deeper",
            json!(["x"]),
            false,
            false,
        ),
        (
            "StringNotIn",
            "data.modelTags.nothing",
            json!(["x"]),
            false,
            true,
        ),
        // Envelope keys, both schemas' names, any case
        ("StringIn", "id", json!(["evt-1"]), false, true),
        ("StringIn", "ID", json!(["EVT-1"]), false, true),
        (
            "StringBeginsWith",
            "topic",
            json!(["/subscriptions/s/"]),
            false,
            true,
        ),
        (
            "StringEndsWith",
            "source",
            json!(["/workspaces/fraud"]),
            false,
            true,
        ),
        (
            "StringContains",
            "Subject",
            json!(["fraud-gbm"]),
            false,
            true,
        ),
        (
            "StringIn",
            "eventType",
            json!(["microsoft.machinelearningservices.modelregistered"]),
            false,
            true,
        ),
        (
            "StringIn",
            "type",
            json!(["Microsoft.MachineLearningServices.ModelDeployed"]),
            false,
            false,
        ),
        ("StringIn", "dataVersion", json!(["2"]), false, true),
        (
            "StringBeginsWith",
            "eventTime",
            json!(["2026-11"]),
            false,
            true,
        ),
        ("StringBeginsWith", "time", json!(["2025"]), false, false),
        ("IsNullOrUndefined", "specversion", Value::Null, false, true),
        // Arrays: ignored unless enabled
        ("NumberIn", "data.sizes", json!([10]), false, false),
        ("NumberIn", "data.sizes", json!([10]), true, true),
        ("NumberIn", "data.sizes", json!([11]), true, false),
        ("NumberNotIn", "data.sizes", json!([10]), true, false),
        ("NumberNotIn", "data.sizes", json!([11, 12]), true, true),
        ("NumberNotIn", "data.sizes", json!([10]), false, false),
        ("NumberGreaterThan", "data.sizes", json!(40), true, true),
        ("NumberGreaterThan", "data.sizes", json!(42), true, false),
        ("NumberLessThan", "data.sizes", json!(4), true, true),
        ("NumberLessThan", "data.sizes", json!(3), true, false),
        ("NumberLessThanOrEquals", "data.sizes", json!(3), true, true),
        (
            "NumberGreaterThanOrEquals",
            "data.sizes",
            json!(42),
            true,
            true,
        ),
        (
            "NumberInRange",
            "data.sizes",
            json!([[11, 41]]),
            true,
            false,
        ),
        ("NumberInRange", "data.sizes", json!([[11, 42]]), true, true),
        (
            "NumberNotInRange",
            "data.sizes",
            json!([[11, 41]]),
            true,
            true,
        ),
        (
            "NumberNotInRange",
            "data.sizes",
            json!([[0, 5]]),
            true,
            false,
        ),
        ("StringIn", "data.labels", json!(["BETA"]), true, true),
        ("StringIn", "data.labels", json!(["BETA"]), false, false),
        ("StringIn", "data.labels", json!(["gamma"]), true, false),
        ("StringNotIn", "data.labels", json!(["alpha"]), true, false),
        ("StringNotIn", "data.labels", json!(["gamma"]), true, true),
        ("StringContains", "data.labels", json!(["lph"]), true, true),
        (
            "StringNotContains",
            "data.labels",
            json!(["lph"]),
            true,
            false,
        ),
        (
            "StringNotContains",
            "data.labels",
            json!(["zzz"]),
            true,
            true,
        ),
        ("StringBeginsWith", "data.labels", json!(["be"]), true, true),
        (
            "StringNotBeginsWith",
            "data.labels",
            json!(["be"]),
            true,
            false,
        ),
        ("StringEndsWith", "data.labels", json!(["HA"]), true, true),
        (
            "StringNotEndsWith",
            "data.labels",
            json!(["HA"]),
            true,
            false,
        ),
        ("StringNotEndsWith", "data.labels", json!(["q"]), true, true),
        // Mixed arrays: elements of another type are ignored
        ("StringIn", "data.mixed", json!(["x"]), true, true),
        ("NumberIn", "data.mixed", json!([5]), true, true),
        ("BoolEquals", "data.mixed", json!(true), true, true),
        ("BoolEquals", "data.mixed", json!(false), true, false),
        ("NumberGreaterThan", "data.mixed", json!(5), true, false),
        // Empty arrays have nothing to match
        ("StringIn", "data.empty", json!(["x"]), true, false),
        ("StringNotIn", "data.empty", json!(["x"]), true, true),
        ("NumberNotIn", "data.empty", json!([1]), true, true),
        ("StringNotContains", "data.empty", json!(["x"]), true, false),
    ];
    let count = cases.len();
    for (op, key, values, arrays, expected) in cases {
        let f = filter(advanced(op, key, values.clone(), arrays))
            .unwrap_or_else(|e| panic!("{op} {key}: {e}"));
        assert_eq!(
            f.matches(&e),
            expected,
            "{op} {key} {values} arrays={arrays}"
        );
    }
    assert!(count >= 120, "{count} cases");
}

#[test]
fn event_types_and_subjects() {
    let e = event();
    let cases: Vec<(Value, bool)> = vec![
        (json!({}), true),
        (json!({"includedEventTypes": null}), true),
        (json!({"includedEventTypes": []}), true),
        (json!({"includedEventTypes": ["All"]}), true),
        (
            json!({"includedEventTypes": ["Microsoft.MachineLearningServices.ModelRegistered"]}),
            true,
        ),
        (
            json!({"includedEventTypes": ["microsoft.machinelearningservices.modelregistered"]}),
            true,
        ),
        (
            json!({"includedEventTypes": ["Microsoft.MachineLearningServices.RunCompleted", "Microsoft.MachineLearningServices.ModelRegistered"]}),
            true,
        ),
        (
            json!({"includedEventTypes": ["Microsoft.MachineLearningServices.RunCompleted"]}),
            false,
        ),
        (json!({"subjectBeginsWith": "models/"}), true),
        (json!({"subjectBeginsWith": "MODELS/fraud"}), true),
        (
            json!({"subjectBeginsWith": "MODELS/", "isSubjectCaseSensitive": true}),
            false,
        ),
        (
            json!({"subjectBeginsWith": "models/Fraud", "isSubjectCaseSensitive": true}),
            true,
        ),
        (json!({"subjectBeginsWith": ""}), true),
        (json!({"subjectBeginsWith": "experiments/"}), false),
        (json!({"subjectEndsWith": ":7"}), true),
        (json!({"subjectEndsWith": "gbm:7"}), true),
        (
            json!({"subjectEndsWith": "gbm:7", "isSubjectCaseSensitive": true}),
            false,
        ),
        (json!({"subjectEndsWith": ":8"}), false),
        (json!({"subjectEndsWith": ""}), true),
        (
            json!({"subjectBeginsWith": "models/", "subjectEndsWith": ":7"}),
            true,
        ),
        (
            json!({"subjectBeginsWith": "models/", "subjectEndsWith": ":8"}),
            false,
        ),
        // Everything ANDs.
        (
            json!({"includedEventTypes": ["Microsoft.MachineLearningServices.ModelRegistered"], "subjectBeginsWith": "runs/"}),
            false,
        ),
        (
            json!({"includedEventTypes": ["Microsoft.MachineLearningServices.ModelRegistered"],
                "advancedFilters": [{"operatorType": "StringIn", "key": "data.modelTags.stage", "values": ["prod"]}]}),
            true,
        ),
        (
            json!({"includedEventTypes": ["Microsoft.MachineLearningServices.RunCompleted"],
                "advancedFilters": [{"operatorType": "StringIn", "key": "data.modelTags.stage", "values": ["prod"]}]}),
            false,
        ),
        (
            json!({"advancedFilters": [
            {"operatorType": "StringIn", "key": "data.modelTags.stage", "values": ["prod"]},
            {"operatorType": "NumberGreaterThan", "key": "data.modelVersion", "value": 5}]}),
            true,
        ),
        (
            json!({"advancedFilters": [
            {"operatorType": "StringIn", "key": "data.modelTags.stage", "values": ["prod"]},
            {"operatorType": "NumberGreaterThan", "key": "data.modelVersion", "value": 7}]}),
            false,
        ),
        // The same key twice.
        (
            json!({"advancedFilters": [
            {"operatorType": "NumberGreaterThan", "key": "data.modelVersion", "value": 5},
            {"operatorType": "NumberLessThan", "key": "data.modelVersion", "value": 10}]}),
            true,
        ),
        (
            json!({"advancedFilters": [
            {"operatorType": "NumberGreaterThan", "key": "data.modelVersion", "value": 5},
            {"operatorType": "NumberLessThan", "key": "data.modelVersion", "value": 6}]}),
            false,
        ),
    ];
    for (spec, expected) in cases {
        let f = filter(spec.clone()).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(f.matches(&e), expected, "{spec}");
    }
}

#[test]
fn malformed_filters_and_limits_are_refused() {
    let long = "x".repeat(513);
    let values25: Vec<String> = (0..25).map(|i| i.to_string()).collect();
    let values26: Vec<String> = (0..26).map(|i| i.to_string()).collect();
    let one = |op: &str| json!({"operatorType": op, "key": "subject", "values": ["a"]});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"advancedFilters": [{"operatorType": "StringIn", "key": "subject"}]}),
            "advancedFilters[0]: StringIn needs `values`",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "StringIn", "key": "subject", "values": []}]}),
            "advancedFilters[0]: StringIn needs at least one value in `values`",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "StringIn", "key": "subject", "value": "a"}]}),
            "advancedFilters[0]: StringIn takes `values` (a list), not `value`",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "StringIn", "key": "subject", "values": [1]}]}),
            "advancedFilters[0]: StringIn values[0]: must be a string, found 1",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "StringIn", "key": "subject", "values": [long]}]}),
            "advancedFilters[0]: StringIn values[0]: is 513 characters long; Event Grid allows at most 512",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "NumberIn", "key": "subject", "values": ["1"]}]}),
            "advancedFilters[0]: NumberIn values[0]: must be a number, found \"1\"",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "NumberLessThan", "key": "subject", "values": [1]}]}),
            "advancedFilters[0]: NumberLessThan takes one `value`, not `values`",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "NumberLessThan", "key": "subject"}]}),
            "advancedFilters[0]: NumberLessThan needs `value`",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "BoolEquals", "key": "subject", "value": "true"}]}),
            "advancedFilters[0]: BoolEquals value: must be true or false, found \"true\"",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "NumberInRange", "key": "subject", "values": [[5, 1]]}]}),
            "advancedFilters[0]: NumberInRange values[0]: range [5, 1] has its low end above its high end",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "NumberInRange", "key": "subject", "values": [[1, 2, 3]]}]}),
            "advancedFilters[0]: NumberInRange values[0]: must be a [low, high] pair of numbers, found [1,2,3]",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "IsNotNull", "key": "subject", "value": 1}]}),
            "advancedFilters[0]: IsNotNull takes no value",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "StringLike", "key": "subject", "values": ["a"]}]}),
            "advancedFilters[0]: operatorType `StringLike` is not one of NumberIn, NumberNotIn, NumberLessThan, NumberGreaterThan, NumberLessThanOrEquals, NumberGreaterThanOrEquals, NumberInRange, NumberNotInRange, BoolEquals, StringIn, StringNotIn, StringContains, StringNotContains, StringBeginsWith, StringNotBeginsWith, StringEndsWith, StringNotEndsWith, IsNullOrUndefined, IsNotNull",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "StringIn", "key": "owner-team", "values": ["a"]}]}),
            "advancedFilters[0]: key `owner-team` is neither an envelope field or CloudEvents attribute (letters and digits: id, topic, subject, eventType, eventTime, dataVersion, source, type, time, specversion, an extension attribute) nor `data.<path>`",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "StringIn", "key": "data..x", "values": ["a"]}]}),
            "advancedFilters[0]: key `data..x` has an empty path segment",
        ),
        (
            json!({"advancedFilters": vec![one("StringIn"); 26]}),
            "advancedFilters has 26 entries; Event Grid allows at most 25",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "StringIn", "key": "data", "values": ["a"]}]}),
            "advancedFilters[0]: key `data` is neither an envelope field or CloudEvents attribute (letters and digits: id, topic, subject, eventType, eventTime, dataVersion, source, type, time, specversion, an extension attribute) nor `data.<path>`",
        ),
        (
            json!({"advancedFilters": [{"operatorType": "StringIn", "key": "subject", "values": values26}]}),
            "advancedFilters hold 26 values in all; Event Grid allows at most 25",
        ),
        (
            json!({"includedEventTypes": ["x", " "]}),
            "includedEventTypes[1] is empty",
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(
            filter(spec.clone()).expect_err("refused"),
            expected,
            "{spec}"
        );
    }
    // Exactly at the limits is fine.
    assert!(filter(json!({"advancedFilters": [{"operatorType": "StringIn", "key": "subject", "values": values25}]})).is_ok());
    assert!(filter(json!({"advancedFilters": vec![json!({"operatorType": "IsNotNull", "key": "subject"}); 25]})).is_ok());
    assert!(filter(json!({"advancedFilters": [{"operatorType": "StringIn", "key": "subject", "values": ["y".repeat(512)]}]})).is_ok());
    // Operator names are accepted in any case, as Event Grid does.
    assert!(filter(json!({"advancedFilters": [{"operatorType": "stringin", "key": "subject", "values": ["a"]}]})).is_ok());
}
