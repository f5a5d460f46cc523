//! Filters on an event's `data` (issue 15 item 4): conditions on its fields
//! combined with `all` / `any` / `not`.
//!
//! A condition names a field by a dotted path (`status`, `offer.id`,
//! `items.0.sku`) and tests it: `equals` a value, `in` a list, `gt` / `gte` /
//! `lt` / `lte` a number, or `exists`. Several tests on one field must all
//! hold (`{field: "payout", gte: 10, lt: 100}`). A missing field fails every
//! test but `exists: false`; a comparison on a field that is not a number
//! fails. Numbers compare by value (`1` equals `1.0`). The same JSON shape is
//! the GraphQL input and what is stored; it is checked when saved and bounded
//! (depth, conditions, list lengths), so evaluating one costs at most a few
//! dozen lookups. A stored filter that no longer reads matches nothing.

use serde_json::{Map, Value};

use crate::error::AppError;

pub const MAX_DEPTH: usize = 4;
pub const MAX_CONDITIONS: usize = 64;
pub const MAX_IN: usize = 100;
pub const MAX_PATH_SEGMENTS: usize = 10;
pub const MAX_FIELD_LEN: usize = 200;
pub const MAX_TEXT_LEN: usize = 256;

#[derive(Clone, Debug, PartialEq)]
pub enum DataFilter {
    All(Vec<DataFilter>),
    Any(Vec<DataFilter>),
    Not(Box<DataFilter>),
    Field {
        path: Vec<String>,
        tests: Vec<Test>,
    },
    /// A stored filter that no longer reads: matches nothing.
    Broken,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    Equals(Value),
    In(Vec<Value>),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    Exists(bool),
}

const TESTS: [&str; 7] = ["equals", "in", "gt", "gte", "lt", "lte", "exists"];

/// Reads and checks a filter; errors name the part at fault
/// (`dataFilter.all[1].gt`).
pub fn parse(field: &str, value: &Value) -> Result<DataFilter, AppError> {
    let mut budget = MAX_CONDITIONS;
    parse_node(field, value, 1, &mut budget)
}

/// A stored filter (checked when saved).
pub fn from_json(value: &Value) -> DataFilter {
    parse("dataFilter", value).unwrap_or(DataFilter::Broken)
}

fn parse_node(
    field: &str,
    value: &Value,
    depth: usize,
    budget: &mut usize,
) -> Result<DataFilter, AppError> {
    let bad = |message: String| AppError::bad_input(field, message);
    let Value::Object(map) = value else {
        return Err(bad(
            "must be an object: all, any, not, or field with tests".into()
        ));
    };
    if depth > MAX_DEPTH {
        return Err(bad(format!("nests deeper than {MAX_DEPTH} levels")));
    }
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| bad(format!("has more than {MAX_CONDITIONS} conditions")))?;
    let kinds: Vec<&str> = ["all", "any", "not", "field"]
        .into_iter()
        .filter(|k| map.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    let [kind] = kinds[..] else {
        return Err(bad("must have exactly one of all, any, not or field".into()));
    };
    if let Some(other) = map.iter().find(|(k, v)| {
        !v.is_null() && *k != kind && (kind != "field" || !TESTS.contains(&k.as_str()))
    }) {
        return Err(bad(format!("`{}` does not go with `{kind}`", other.0)));
    }
    match kind {
        "all" | "any" => {
            let Some(items) = map[kind].as_array().filter(|items| !items.is_empty()) else {
                return Err(AppError::bad_input(
                    format!("{field}.{kind}"),
                    "must list at least one condition",
                ));
            };
            let parsed = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    parse_node(&format!("{field}.{kind}[{i}]"), item, depth + 1, budget)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if kind == "all" {
                DataFilter::All(parsed)
            } else {
                DataFilter::Any(parsed)
            })
        }
        "not" => Ok(DataFilter::Not(Box::new(parse_node(
            &format!("{field}.not"),
            &map["not"],
            depth + 1,
            budget,
        )?))),
        _ => parse_field(field, map, budget),
    }
}

fn parse_field(
    field: &str,
    map: &Map<String, Value>,
    budget: &mut usize,
) -> Result<DataFilter, AppError> {
    let at = |name: &str| format!("{field}.{name}");
    let path_text = map["field"]
        .as_str()
        .ok_or_else(|| AppError::bad_input(at("field"), "must be a string"))?;
    let path: Vec<String> = path_text.split('.').map(str::to_owned).collect();
    if path_text.len() > MAX_FIELD_LEN
        || path.len() > MAX_PATH_SEGMENTS
        || path.iter().any(String::is_empty)
    {
        return Err(AppError::bad_input(
            at("field"),
            format!(
                "must be a dotted path of at most {MAX_PATH_SEGMENTS} non-empty names, {MAX_FIELD_LEN} characters in all"
            ),
        ));
    }
    let mut tests = Vec::new();
    for name in TESTS {
        let Some(value) = map.get(name).filter(|v| !v.is_null()) else {
            continue;
        };
        let field = at(name);
        let number = || {
            value
                .as_f64()
                .ok_or_else(|| AppError::bad_input(&field, "must be a number"))
        };
        tests.push(match name {
            "equals" => Test::Equals(scalar(&field, value)?),
            "in" => {
                let items = value
                    .as_array()
                    .filter(|items| !items.is_empty() && items.len() <= MAX_IN)
                    .ok_or_else(|| {
                        AppError::bad_input(&field, format!("must list 1 to {MAX_IN} values"))
                    })?;
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| scalar(&format!("{field}[{i}]"), item))
                    .collect::<Result<_, _>>()?;
                Test::In(items)
            }
            "gt" => Test::Gt(number()?),
            "gte" => Test::Gte(number()?),
            "lt" => Test::Lt(number()?),
            "lte" => Test::Lte(number()?),
            _ => Test::Exists(
                value
                    .as_bool()
                    .ok_or_else(|| AppError::bad_input(&field, "must be true or false"))?,
            ),
        });
    }
    if tests.is_empty() {
        return Err(AppError::bad_input(
            field,
            "a field condition needs a test: equals, in, gt, gte, lt, lte or exists",
        ));
    }
    *budget = budget.checked_sub(tests.len() - 1).ok_or_else(|| {
        AppError::bad_input(field, format!("has more than {MAX_CONDITIONS} conditions"))
    })?;
    Ok(DataFilter::Field { path, tests })
}

/// A value a field is compared with: a string, number, boolean or null.
fn scalar(field: &str, value: &Value) -> Result<Value, AppError> {
    match value {
        Value::String(text) if text.chars().count() > MAX_TEXT_LEN => Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_TEXT_LEN} characters"),
        )),
        Value::Array(_) | Value::Object(_) => Err(AppError::bad_input(
            field,
            "must be a string, number, boolean or null",
        )),
        _ => Ok(value.clone()),
    }
}

pub fn to_json(filter: &DataFilter) -> Value {
    match filter {
        DataFilter::All(items) => {
            serde_json::json!({ "all": items.iter().map(to_json).collect::<Vec<_>>() })
        }
        DataFilter::Any(items) => {
            serde_json::json!({ "any": items.iter().map(to_json).collect::<Vec<_>>() })
        }
        DataFilter::Not(inner) => serde_json::json!({ "not": to_json(inner) }),
        DataFilter::Broken => serde_json::json!({ "any": [] }),
        DataFilter::Field { path, tests } => {
            let mut map = Map::new();
            map.insert("field".into(), Value::String(path.join(".")));
            for test in tests {
                let (name, value) = match test {
                    Test::Equals(v) => ("equals", v.clone()),
                    Test::In(items) => ("in", Value::Array(items.clone())),
                    Test::Gt(n) => ("gt", Value::from(*n)),
                    Test::Gte(n) => ("gte", Value::from(*n)),
                    Test::Lt(n) => ("lt", Value::from(*n)),
                    Test::Lte(n) => ("lte", Value::from(*n)),
                    Test::Exists(b) => ("exists", Value::Bool(*b)),
                };
                map.insert(name.into(), value);
            }
            Value::Object(map)
        }
    }
}

impl DataFilter {
    /// Whether an event's `data` passes.
    pub fn matches(&self, data: &Value) -> bool {
        match self {
            Self::All(items) => items.iter().all(|f| f.matches(data)),
            Self::Any(items) => items.iter().any(|f| f.matches(data)),
            Self::Not(inner) => !inner.matches(data),
            Self::Broken => false,
            Self::Field { path, tests } => {
                let found = lookup(data, path);
                tests.iter().all(|test| test.holds(found))
            }
        }
    }
}

impl Test {
    fn holds(&self, found: Option<&Value>) -> bool {
        let number = || found.and_then(Value::as_f64);
        match self {
            Self::Exists(wanted) => found.is_some() == *wanted,
            Self::Equals(wanted) => found.is_some_and(|v| same(v, wanted)),
            Self::In(items) => found.is_some_and(|v| items.iter().any(|w| same(v, w))),
            Self::Gt(n) => number().is_some_and(|v| v > *n),
            Self::Gte(n) => number().is_some_and(|v| v >= *n),
            Self::Lt(n) => number().is_some_and(|v| v < *n),
            Self::Lte(n) => number().is_some_and(|v| v <= *n),
        }
    }
}

/// The value at `path`: object keys, or indexes into lists.
fn lookup<'a>(data: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(data, |value, key| match value {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// JSON equality, numbers by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

#[cfg(test)]
mod tests;
