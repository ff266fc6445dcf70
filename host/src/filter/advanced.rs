//! Event Grid advanced filters: 19 operators over envelope fields,
//! CloudEvents attributes and `data.<path>` keys.
//!
//! Rules (docs/EVENTS.md §filters): string comparisons ignore case; numbers
//! compare as decimals; several values in one filter OR; a key whose value
//! is missing, null or of another type than the operator's matches only
//! `NumberNotIn`, `StringNotIn` and `IsNullOrUndefined`; arrays are looked
//! into only with `enableAdvancedFilteringOnArrays`, where a positive
//! operator matches if any element matches and a negated one fails if any
//! element matches — without it, an array fails every operator.

use super::key::{Found, Key, Scalar, decimal};
use super::{AdvancedFilterSpec, MAX_STRING_VALUE_CHARS};
use crate::event::Event;
use rust_decimal::Decimal;
use serde_json::Value;

/// An operator with its validated values (strings already lower-cased).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // the variant names are Event Grid's operator names
pub enum Operator {
    NumberIn(Vec<Decimal>),
    NumberNotIn(Vec<Decimal>),
    NumberLessThan(Decimal),
    NumberGreaterThan(Decimal),
    NumberLessThanOrEquals(Decimal),
    NumberGreaterThanOrEquals(Decimal),
    NumberInRange(Vec<(Decimal, Decimal)>),
    NumberNotInRange(Vec<(Decimal, Decimal)>),
    BoolEquals(bool),
    StringIn(Vec<String>),
    StringNotIn(Vec<String>),
    StringContains(Vec<String>),
    StringNotContains(Vec<String>),
    StringBeginsWith(Vec<String>),
    StringNotBeginsWith(Vec<String>),
    StringEndsWith(Vec<String>),
    StringNotEndsWith(Vec<String>),
    IsNullOrUndefined,
    IsNotNull,
}

/// The operator names, in Event Grid's spelling.
pub const OPERATORS: [&str; 19] = [
    "NumberIn",
    "NumberNotIn",
    "NumberLessThan",
    "NumberGreaterThan",
    "NumberLessThanOrEquals",
    "NumberGreaterThanOrEquals",
    "NumberInRange",
    "NumberNotInRange",
    "BoolEquals",
    "StringIn",
    "StringNotIn",
    "StringContains",
    "StringNotContains",
    "StringBeginsWith",
    "StringNotBeginsWith",
    "StringEndsWith",
    "StringNotEndsWith",
    "IsNullOrUndefined",
    "IsNotNull",
];

/// One validated advanced filter.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvancedFilter {
    /// What it looks at.
    pub key: Key,
    /// How it compares.
    pub operator: Operator,
}

impl AdvancedFilter {
    pub(super) fn from_spec(spec: &AdvancedFilterSpec) -> Result<Self, String> {
        let key = Key::parse(&spec.key)?;
        let op = spec.operator_type.as_str();
        let Some(name) = OPERATORS.iter().find(|n| n.eq_ignore_ascii_case(op)) else {
            return Err(format!(
                "operatorType `{op}` is not one of {}",
                OPERATORS.join(", ")
            ));
        };
        let spec = Values { spec, op: name };
        let operator = match *name {
            "NumberIn" => Operator::NumberIn(spec.list(number)?),
            "NumberNotIn" => Operator::NumberNotIn(spec.list(number)?),
            "NumberLessThan" => Operator::NumberLessThan(spec.single(number)?),
            "NumberGreaterThan" => Operator::NumberGreaterThan(spec.single(number)?),
            "NumberLessThanOrEquals" => Operator::NumberLessThanOrEquals(spec.single(number)?),
            "NumberGreaterThanOrEquals" => {
                Operator::NumberGreaterThanOrEquals(spec.single(number)?)
            }
            "NumberInRange" => Operator::NumberInRange(spec.list(range)?),
            "NumberNotInRange" => Operator::NumberNotInRange(spec.list(range)?),
            "BoolEquals" => Operator::BoolEquals(spec.single(boolean)?),
            "StringIn" => Operator::StringIn(spec.list(string)?),
            "StringNotIn" => Operator::StringNotIn(spec.list(string)?),
            "StringContains" => Operator::StringContains(spec.list(string)?),
            "StringNotContains" => Operator::StringNotContains(spec.list(string)?),
            "StringBeginsWith" => Operator::StringBeginsWith(spec.list(string)?),
            "StringNotBeginsWith" => Operator::StringNotBeginsWith(spec.list(string)?),
            "StringEndsWith" => Operator::StringEndsWith(spec.list(string)?),
            "StringNotEndsWith" => Operator::StringNotEndsWith(spec.list(string)?),
            "IsNullOrUndefined" => spec.none(Operator::IsNullOrUndefined)?,
            _ => spec.none(Operator::IsNotNull)?,
        };
        Ok(Self { key, operator })
    }

    /// How many values count toward Event Grid's limit of 25.
    pub fn value_count(&self) -> usize {
        use Operator::*;
        match &self.operator {
            NumberIn(v) | NumberNotIn(v) => v.len(),
            NumberInRange(r) | NumberNotInRange(r) => r.len(),
            StringIn(v)
            | StringNotIn(v)
            | StringContains(v)
            | StringNotContains(v)
            | StringBeginsWith(v)
            | StringNotBeginsWith(v)
            | StringEndsWith(v)
            | StringNotEndsWith(v) => v.len(),
            NumberLessThan(_)
            | NumberGreaterThan(_)
            | NumberLessThanOrEquals(_)
            | NumberGreaterThanOrEquals(_)
            | BoolEquals(_) => 1,
            IsNullOrUndefined | IsNotNull => 0,
        }
    }

    /// Does `event` pass this filter?
    pub fn matches(&self, event: &Event, arrays: bool) -> bool {
        use Operator::*;
        // The candidates: the value itself, or an array's elements when
        // allowed. An array without the flag is not a value any operator
        // can read: every operator fails, the negated ones included.
        let (absent, candidates) = match self.key.lookup(event) {
            Found::Absent => (true, Vec::new()),
            Found::One(v) => (false, vec![v]),
            Found::Many(items) if arrays => (false, items),
            Found::Many(_) => return false,
        };
        let nums: Vec<Decimal> = candidates
            .iter()
            .filter_map(|v| match v {
                Scalar::Number(n) => Some(*n),
                _ => None,
            })
            .collect();
        let strs: Vec<String> = candidates
            .iter()
            .filter_map(|v| match v {
                Scalar::String(s) => Some(s.to_lowercase()),
                _ => None,
            })
            .collect();
        let any_num = |f: &dyn Fn(Decimal) -> bool| nums.iter().any(|&n| f(n));
        let any_str = |vals: &[String], f: &dyn Fn(&str, &str) -> bool| {
            strs.iter().any(|s| vals.iter().any(|v| f(s, v)))
        };
        // A negated operator needs something of its type to look at, except
        // the two "NotIn" operators, which Event Grid matches on a missing key.
        let in_range =
            |n: Decimal, r: &[(Decimal, Decimal)]| r.iter().any(|&(lo, hi)| lo <= n && n <= hi);
        match &self.operator {
            NumberIn(v) => any_num(&|n| v.contains(&n)),
            NumberNotIn(v) => !any_num(&|n| v.contains(&n)),
            NumberLessThan(f) => any_num(&|n| n < *f),
            NumberGreaterThan(f) => any_num(&|n| n > *f),
            NumberLessThanOrEquals(f) => any_num(&|n| n <= *f),
            NumberGreaterThanOrEquals(f) => any_num(&|n| n >= *f),
            NumberInRange(r) => any_num(&|n| in_range(n, r)),
            NumberNotInRange(r) => !nums.is_empty() && !any_num(&|n| in_range(n, r)),
            BoolEquals(b) => candidates.contains(&Scalar::Bool(*b)),
            StringIn(v) => any_str(v, &|s, f| s == f),
            StringNotIn(v) => !any_str(v, &|s, f| s == f),
            StringContains(v) => any_str(v, &|s, f| s.contains(f)),
            StringNotContains(v) => !strs.is_empty() && !any_str(v, &|s, f| s.contains(f)),
            StringBeginsWith(v) => any_str(v, &|s, f| s.starts_with(f)),
            StringNotBeginsWith(v) => !strs.is_empty() && !any_str(v, &|s, f| s.starts_with(f)),
            StringEndsWith(v) => any_str(v, &|s, f| s.ends_with(f)),
            StringNotEndsWith(v) => !strs.is_empty() && !any_str(v, &|s, f| s.ends_with(f)),
            IsNullOrUndefined => absent,
            IsNotNull => !absent,
        }
    }
}

/// Reading `value` / `values` for one operator.
struct Values<'a> {
    spec: &'a AdvancedFilterSpec,
    op: &'a str,
}

impl Values<'_> {
    fn list<T>(&self, read: fn(&Value) -> Result<T, String>) -> Result<Vec<T>, String> {
        let op = self.op;
        if self.spec.value.is_some() {
            return Err(format!("{op} takes `values` (a list), not `value`"));
        }
        let values = self
            .spec
            .values
            .as_ref()
            .ok_or_else(|| format!("{op} needs `values`"))?;
        if values.is_empty() {
            return Err(format!("{op} needs at least one value in `values`"));
        }
        values
            .iter()
            .enumerate()
            .map(|(i, v)| read(v).map_err(|e| format!("{op} values[{i}]: {e}")))
            .collect()
    }

    fn single<T>(&self, read: fn(&Value) -> Result<T, String>) -> Result<T, String> {
        let op = self.op;
        if self.spec.values.is_some() {
            return Err(format!("{op} takes one `value`, not `values`"));
        }
        let value = self
            .spec
            .value
            .as_ref()
            .ok_or_else(|| format!("{op} needs `value`"))?;
        read(value).map_err(|e| format!("{op} value: {e}"))
    }

    fn none(&self, operator: Operator) -> Result<Operator, String> {
        if self.spec.value.is_some() || self.spec.values.is_some() {
            return Err(format!("{} takes no value", self.op));
        }
        Ok(operator)
    }
}

/// A filter value as a decimal, from the manifest's number as written
/// (TOML floats reach here as their shortest round-trip text: `0.3`).
fn number(v: &Value) -> Result<Decimal, String> {
    match v {
        Value::Number(n) => decimal(&n.to_string()).ok_or_else(|| {
            format!(
                "{n} is beyond the range of a decimal (about ±7.9e28), which Event Grid compares"
            )
        }),
        _ => Err(format!("must be a number, found {v}")),
    }
}

fn boolean(v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("must be true or false, found {v}"))
}

fn string(v: &Value) -> Result<String, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("must be a string, found {v}"))?;
    let chars = s.chars().count();
    if chars > MAX_STRING_VALUE_CHARS {
        return Err(format!(
            "is {chars} characters long; Event Grid allows at most {MAX_STRING_VALUE_CHARS}"
        ));
    }
    Ok(s.to_lowercase())
}

fn range(v: &Value) -> Result<(Decimal, Decimal), String> {
    match v.as_array().map(Vec::as_slice) {
        Some([lo, hi]) => {
            let (lo, hi) = (number(lo)?, number(hi)?);
            if lo > hi {
                return Err(format!(
                    "range [{lo}, {hi}] has its low end above its high end"
                ));
            }
            Ok((lo, hi))
        }
        _ => Err(format!("must be a [low, high] pair of numbers, found {v}")),
    }
}
