//! Event labels and the label filters webhooks select events with.
//!
//! Labels are a flat string -> string map chosen by the publisher (a campaign
//! id, the login an event is about, ...). A filter names labels with the
//! values it allows (`{"campaignId": ["42", "43"]}`, or one value,
//! `{"campaignId": "42"}`): it matches when every label it names is present
//! with one of its values.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::AppError;

pub type Labels = BTreeMap<String, String>;
/// Label -> the values it may have (at least one each).
pub type LabelFilter = BTreeMap<String, Vec<String>>;

pub const MAX_LABELS: usize = 20;
pub const MAX_KEY_LEN: usize = 64;
pub const MAX_VALUE_LEN: usize = 256;
/// Values a filter allows for one label.
pub const MAX_FILTER_VALUES: usize = 100;

/// Reads a JSON object of labels. Numbers and booleans are accepted and kept
/// as their text (`{"campaignId": 42}` is `campaignId = "42"`).
pub fn parse(field: &str, value: &Value) -> Result<Labels, AppError> {
    let Value::Object(map) = value else {
        return Err(AppError::bad_input(
            field,
            "must be a JSON object of label -> value",
        ));
    };
    if map.len() > MAX_LABELS {
        return Err(AppError::bad_input(
            field,
            format!("must have at most {MAX_LABELS} labels"),
        ));
    }
    let mut labels = Labels::new();
    for (key, value) in map {
        check_key(key).map_err(|message| AppError::bad_input(format!("{field}.{key}"), message))?;
        labels.insert(key.clone(), value_text(&format!("{field}.{key}"), value)?);
    }
    Ok(labels)
}

/// A label value as text: strings, numbers and booleans.
fn value_text(field: &str, value: &Value) -> Result<String, AppError> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => {
            return Err(AppError::bad_input(
                field,
                "must be a string, number or boolean",
            ));
        }
    };
    if text.chars().count() > MAX_VALUE_LEN {
        return Err(AppError::bad_input(
            field,
            format!("must be at most {MAX_VALUE_LEN} characters"),
        ));
    }
    Ok(text)
}

/// Reads a label filter: label -> a value, or a list of the values allowed.
pub fn parse_filter(field: &str, value: &Value) -> Result<LabelFilter, AppError> {
    let Value::Object(map) = value else {
        return Err(AppError::bad_input(
            field,
            "must be a JSON object of label -> value or list of values",
        ));
    };
    if map.len() > MAX_LABELS {
        return Err(AppError::bad_input(
            field,
            format!("must name at most {MAX_LABELS} labels"),
        ));
    }
    let mut filter = LabelFilter::new();
    for (key, value) in map {
        let at = format!("{field}.{key}");
        check_key(key).map_err(|message| AppError::bad_input(&at, message))?;
        let mut values = match value {
            Value::Array(items) if (1..=MAX_FILTER_VALUES).contains(&items.len()) => items
                .iter()
                .enumerate()
                .map(|(i, item)| value_text(&format!("{at}[{i}]"), item))
                .collect::<Result<Vec<_>, _>>()?,
            Value::Array(_) => {
                return Err(AppError::bad_input(
                    &at,
                    format!("must list 1 to {MAX_FILTER_VALUES} values"),
                ));
            }
            other => vec![value_text(&at, other)?],
        };
        values.sort();
        values.dedup();
        filter.insert(key.clone(), values);
    }
    Ok(filter)
}

/// Whether `labels` satisfy `filter`: every label it names present with one
/// of its values. An empty filter matches everything.
pub fn filter_matches(filter: &LabelFilter, labels: &Labels) -> bool {
    filter.iter().all(|(key, allowed)| {
        labels
            .get(key)
            .is_some_and(|value| allowed.iter().any(|a| a == value))
    })
}

/// A filter as stored and shown: one value as a string, several as a list.
pub fn filter_to_json(filter: &LabelFilter) -> Value {
    Value::Object(
        filter
            .iter()
            .map(|(k, values)| {
                let value = match values.as_slice() {
                    [one] => Value::String(one.clone()),
                    many => Value::from(many.to_vec()),
                };
                (k.clone(), value)
            })
            .collect(),
    )
}

/// Reads a filter stored by [`filter_to_json`].
pub fn filter_from_json(value: &Value) -> LabelFilter {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| {
                    let values = match v {
                        Value::Array(items) => items
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_owned))
                            .collect(),
                        other => other.as_str().map(str::to_owned).into_iter().collect(),
                    };
                    (k.clone(), values)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a label name.
pub fn check_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "label names are 1 to {MAX_KEY_LEN} letters, digits, `_`, `-` or `.`"
        ))
    }
}

/// Whether `labels` satisfy `filter`: every filter pair present and equal.
/// An empty filter matches everything.
pub fn matches(filter: &Labels, labels: &Labels) -> bool {
    filter
        .iter()
        .all(|(key, wanted)| labels.get(key) == Some(wanted))
}

pub fn to_json(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Reads labels stored by [`to_json`]. Stored data was validated on the way in.
pub fn from_json(value: &Value) -> Labels {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(value: Value) -> Labels {
        parse("labels", &value).expect("valid labels")
    }

    #[test]
    fn filter_requires_every_pair() {
        let filter = labels(json!({"campaignId": 42, "login": "aff-7"}));
        assert!(matches(
            &filter,
            &labels(json!({"campaignId": "42", "login": "aff-7", "x": "y"}))
        ));
        assert!(!matches(&filter, &labels(json!({"campaignId": "42"}))));
        assert!(!matches(
            &filter,
            &labels(json!({"campaignId": "43", "login": "aff-7"}))
        ));
    }

    #[test]
    fn a_filter_label_may_allow_several_values() {
        let filter = parse_filter(
            "labelFilter",
            &json!({"campaignId": [42, "43"], "login": "aff-7"}),
        )
        .expect("valid");
        assert_eq!(filter_from_json(&filter_to_json(&filter)), filter);
        assert_eq!(
            filter_to_json(&filter),
            json!({"campaignId": ["42", "43"], "login": "aff-7"})
        );
        let with = |campaign: &str| labels(json!({"campaignId": campaign, "login": "aff-7"}));
        assert!(filter_matches(&filter, &with("42")));
        assert!(filter_matches(&filter, &with("43")));
        assert!(!filter_matches(&filter, &with("44")));
        assert!(!filter_matches(
            &filter,
            &labels(json!({"campaignId": "42"}))
        ));
        let err = parse_filter("labelFilter", &json!({"a": []})).expect_err("empty list");
        assert!(err.to_string().starts_with("labelFilter.a:"), "{err}");
        let err = parse_filter("labelFilter", &json!({"a": [1, {}]})).expect_err("object");
        assert!(err.to_string().starts_with("labelFilter.a[1]:"), "{err}");
    }

    #[test]
    fn empty_filter_matches_everything() {
        assert!(matches(&Labels::new(), &labels(json!({"a": "b"}))));
        assert!(matches(&Labels::new(), &Labels::new()));
    }

    #[test]
    fn nested_values_and_bad_names_are_refused() {
        assert!(parse("labels", &json!({"a": {"b": 1}})).is_err());
        assert!(parse("labels", &json!({"a": null})).is_err());
        assert!(parse("labels", &json!({"bad key": "x"})).is_err());
        assert!(parse("labels", &json!(["a"])).is_err());
        let err = parse("labelFilter", &json!({"ok": "x".repeat(300)})).expect_err("too long");
        assert!(err.to_string().starts_with("labelFilter.ok:"));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,300}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,70}", inner, 0..25)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_accepted_labels_respect_the_bounds(value in any_json()) {
            if let Ok(labels) = parse("labels", &value) {
                prop_assert!(labels.len() <= MAX_LABELS);
                for (key, value) in &labels {
                    prop_assert!(!key.is_empty() && key.len() <= MAX_KEY_LEN);
                    prop_assert!(value.chars().count() <= MAX_VALUE_LEN);
                }
                prop_assert_eq!(from_json(&to_json(&labels)), labels.clone());
                prop_assert!(matches(&labels, &labels), "a filter matches the labels it was made of");
            }
        }

        #[test]
        fn a_filter_with_an_extra_pair_never_matches_fewer_labels(
            labels in prop::collection::btree_map("[a-z]{1,8}", "[a-z0-9]{0,8}", 0..6),
            key in "[A-Z]{1,8}",
        ) {
            let mut filter = labels.clone();
            filter.insert(key, "x".into());
            prop_assert!(!matches(&filter, &labels));
        }
    }
}
