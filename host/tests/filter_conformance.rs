//! Event Grid filter corner cases: every operator on a scalar, on an array
//! with and without `enableAdvancedFilteringOnArrays`, and on a missing
//! key; numbers compared as decimals; CloudEvents extension attributes and
//! Event Grid envelope fields as keys.

use gridlet::event::{Event, cloud_event_from_text, event_grid_from_text};
use gridlet::filter::{Filter, FilterSpec};
use serde_json::{Value, json};

fn filter(spec: Value) -> Filter {
    let parsed: FilterSpec = serde_json::from_value(spec.clone()).expect("spec");
    Filter::from_spec(&parsed).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// An Event Grid event whose `data` is exactly `data` (text, so numbers
/// keep every digit).
fn with_data(data: &str) -> Event {
    let text = format!(
        r#"{{"id":"e","topic":"/t","subject":"s","eventType":"Custom.Type","eventTime":"2026-11-29T00:00:00Z","dataVersion":"1","metadataVersion":"1","data":{data}}}"#
    );
    event_grid_from_text(&text, 0).expect("event")
}

fn one(op: &str, key: &str, operand: &Value, arrays: bool) -> Filter {
    let mut f = json!({"operatorType": op, "key": key});
    match operand {
        Value::Null => {}
        Value::Array(_) => f["values"] = operand.clone(),
        v => f["value"] = v.clone(),
    }
    filter(json!({"advancedFilters": [f], "enableAdvancedFilteringOnArrays": arrays}))
}

/// Every operator × (scalar, array with the flag, array without it,
/// missing key). The scalar is one the operator matches; the array holds
/// an element of another value and that scalar.
#[test]
fn every_operator_on_a_scalar_an_array_with_and_without_the_flag_and_a_missing_key() {
    // (operator, operand, scalar, array, [scalar, array+flag, array, missing])
    let table: Vec<(&str, Value, &str, &str, [bool; 4])> = vec![
        (
            "NumberIn",
            json!([5]),
            "5",
            "[1, 5]",
            [true, true, false, false],
        ),
        (
            "NumberNotIn",
            json!([5]),
            "4",
            "[1, 4]",
            [true, true, false, true],
        ),
        (
            "NumberLessThan",
            json!(5),
            "4",
            "[9, 4]",
            [true, true, false, false],
        ),
        (
            "NumberGreaterThan",
            json!(5),
            "6",
            "[1, 6]",
            [true, true, false, false],
        ),
        (
            "NumberLessThanOrEquals",
            json!(5),
            "5",
            "[9, 5]",
            [true, true, false, false],
        ),
        (
            "NumberGreaterThanOrEquals",
            json!(5),
            "5",
            "[1, 5]",
            [true, true, false, false],
        ),
        (
            "NumberInRange",
            json!([[1, 5]]),
            "3",
            "[9, 3]",
            [true, true, false, false],
        ),
        (
            "NumberNotInRange",
            json!([[1, 5]]),
            "9",
            "[9, 10]",
            [true, true, false, false],
        ),
        (
            "BoolEquals",
            json!(true),
            "true",
            "[false, true]",
            [true, true, false, false],
        ),
        (
            "StringIn",
            json!(["a"]),
            r#""A""#,
            r#"["x", "a"]"#,
            [true, true, false, false],
        ),
        (
            "StringNotIn",
            json!(["a"]),
            r#""b""#,
            r#"["x", "b"]"#,
            [true, true, false, true],
        ),
        (
            "StringContains",
            json!(["ell"]),
            r#""hello""#,
            r#"["x", "hello"]"#,
            [true, true, false, false],
        ),
        (
            "StringNotContains",
            json!(["ell"]),
            r#""world""#,
            r#"["x", "world"]"#,
            [true, true, false, false],
        ),
        (
            "StringBeginsWith",
            json!(["he"]),
            r#""hello""#,
            r#"["x", "hello"]"#,
            [true, true, false, false],
        ),
        (
            "StringNotBeginsWith",
            json!(["he"]),
            r#""world""#,
            r#"["x", "world"]"#,
            [true, true, false, false],
        ),
        (
            "StringEndsWith",
            json!(["lo"]),
            r#""hello""#,
            r#"["x", "hello"]"#,
            [true, true, false, false],
        ),
        (
            "StringNotEndsWith",
            json!(["lo"]),
            r#""world""#,
            r#"["x", "world"]"#,
            [true, true, false, false],
        ),
        (
            "IsNullOrUndefined",
            Value::Null,
            r#""x""#,
            r#"["x"]"#,
            [false, false, false, true],
        ),
        (
            "IsNotNull",
            Value::Null,
            r#""x""#,
            r#"["x"]"#,
            [true, true, false, false],
        ),
    ];
    assert_eq!(table.len(), 19, "every operator");
    for (op, operand, scalar, array, expected) in &table {
        let scalar_event = with_data(&format!(r#"{{"v": {scalar}}}"#));
        let array_event = with_data(&format!(r#"{{"v": {array}}}"#));
        let missing_event = with_data(r#"{"other": 1}"#);
        let got = [
            one(op, "data.v", operand, false).matches(&scalar_event),
            one(op, "data.v", operand, true).matches(&array_event),
            one(op, "data.v", operand, false).matches(&array_event),
            one(op, "data.v", operand, false).matches(&missing_event),
        ];
        assert_eq!(&got, expected, "{op}: [scalar, array+flag, array, missing]");
        // JSON null is missing, for every operator.
        let null_event = with_data(r#"{"v": null}"#);
        assert_eq!(
            one(op, "data.v", operand, false).matches(&null_event),
            expected[3],
            "{op} on null"
        );
    }
    // With the flag, a negated operator fails once any element matches.
    let both = with_data(r#"{"v": ["hello", "world"]}"#);
    for op in ["StringNotContains", "StringNotBeginsWith", "StringNotIn"] {
        let operand = if op == "StringNotIn" {
            json!(["hello"])
        } else {
            json!(["he"])
        };
        assert!(!one(op, "data.v", &operand, true).matches(&both), "{op}");
    }
    let numbers = with_data(r#"{"v": [3, 10]}"#);
    assert!(!one("NumberNotIn", "data.v", &json!([10]), true).matches(&numbers));
    assert!(!one("NumberNotInRange", "data.v", &json!([[9, 11]]), true).matches(&numbers));
}

/// Numbers compare as decimals, as Event Grid's .NET decimals do.
#[test]
fn numbers_compare_as_decimals() {
    let cases: Vec<(&str, Value, &str, bool)> = vec![
        (
            "NumberIn",
            json!([9007199254740993_u64]),
            "9007199254740992",
            false,
        ),
        (
            "NumberIn",
            json!([9007199254740993_u64]),
            "9007199254740993",
            true,
        ),
        (
            "NumberNotIn",
            json!([9007199254740993_u64]),
            "9007199254740992",
            true,
        ),
        ("NumberLessThan", json!(0.3), "0.29999999999999999", true),
        ("NumberLessThan", json!(0.3), "0.3", false),
        ("NumberLessThan", json!(0.3), "0.30000000000000001", false),
        ("NumberGreaterThan", json!(0.1), "0.10000000000000001", true),
        ("NumberLessThanOrEquals", json!(0.3), "0.300", true),
        ("NumberIn", json!([1500]), "1.5e3", true),
        ("NumberIn", json!([1500]), "1.5E+3", true),
        ("NumberIn", json!([0.0015]), "1.5e-3", true),
        ("NumberIn", json!([1.5e-3]), "0.0015", true),
        ("NumberIn", json!([0.1]), "0.1", true),
        ("NumberInRange", json!([[0.1, 0.2]]), "0.2", true),
        (
            "NumberInRange",
            json!([[0.1, 0.2]]),
            "0.20000000000000001",
            false,
        ),
        (
            "NumberIn",
            json!([18446744073709551615_u64]),
            "18446744073709551615.000",
            true,
        ),
        // Beyond decimal's range: not a number to a filter.
        ("NumberGreaterThan", json!(5), "1e30", false),
        ("NumberNotIn", json!([5]), "1e30", true),
        ("NumberIn", json!([-7]), "-7.0", true),
    ];
    for (op, operand, value, expected) in cases {
        let event = with_data(&format!(r#"{{"v": {value}}}"#));
        assert_eq!(
            one(op, "data.v", &operand, false).matches(&event),
            expected,
            "{op} {operand} on {value}"
        );
    }
    let spec: FilterSpec = serde_json::from_value(json!({"advancedFilters": [
        {"operatorType": "NumberLessThan", "key": "data.v", "value": 1e30}
    ]}))
    .expect("spec");
    assert_eq!(
        Filter::from_spec(&spec).expect_err("refused").to_string(),
        "advancedFilters[0]: NumberLessThan value: 1e+30 is beyond the range of a decimal (about ±7.9e28), which Event Grid compares"
    );
}

/// Any attribute of a CloudEvent is a key (extensions included, in
/// structured and binary mode); for the Event Grid schema, the documented
/// envelope fields are, and anything else is a missing key.
#[test]
fn cloudevents_extension_attributes_and_envelope_fields_are_keys() {
    let ce = cloud_event_from_text(
        r#"{"specversion":"1.0","id":"c1","source":"/ws","type":"T","comexampleextension1":"Value","priority":7,"traced":true,"data":{}}"#,
        0,
    )
    .expect("cloud event");
    let checks = [
        ("StringIn", "comexampleextension1", json!(["value"]), true),
        ("StringIn", "ComExampleExtension1", json!(["VALUE"]), true),
        ("NumberGreaterThan", "priority", json!(5), true),
        ("BoolEquals", "traced", json!(true), true),
        (
            "IsNullOrUndefined",
            "comexampleothervalue",
            Value::Null,
            true,
        ),
        ("StringNotIn", "comexampleothervalue", json!(["x"]), true),
        ("StringIn", "specversion", json!(["1.0"]), true),
        ("IsNullOrUndefined", "subject", Value::Null, true),
        ("StringIn", "type", json!(["t"]), true),
    ];
    for (op, key, operand, expected) in &checks {
        assert_eq!(
            one(op, key, operand, false).matches(&ce),
            *expected,
            "{op} {key}"
        );
    }
    let eg = with_data("{}");
    let checks = [
        ("StringIn", "metadataVersion", json!(["1"]), true),
        ("StringIn", "dataVersion", json!(["1"]), true),
        (
            "StringIn",
            "eventTime",
            json!(["2026-11-29T00:00:00Z"]),
            true,
        ),
        (
            "IsNullOrUndefined",
            "comexampleextension1",
            Value::Null,
            true,
        ),
        ("StringIn", "source", json!(["/t"]), true),
    ];
    for (op, key, operand, expected) in &checks {
        assert_eq!(
            one(op, key, operand, false).matches(&eg),
            *expected,
            "{op} {key}"
        );
    }
    // Event Grid's filtering docs' example key, in a manifest.
    let manifest = gridlet::plugin::Manifest::parse(
        "[filter]\nadvancedFilters = [{ operatorType = \"StringIn\", key = \"comexampleextension1\", values = [\"Value\"] }]\n",
        std::path::Path::new("ext.toml"),
    );
    assert!(manifest.is_ok(), "{manifest:?}");
}
