use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn filter(value: Value) -> DataFilter {
    parse("dataFilter", &value).expect("valid filter")
}

fn field_of(value: Value) -> String {
    let err = parse("dataFilter", &value).expect_err("refused");
    err.to_string()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn equals_in_and_comparisons_test_one_field() {
    let data = json!({ "status": "approved", "payout": 12.5, "offer": { "id": 42 }, "items": [{ "sku": "a" }] });
    assert!(filter(json!({ "field": "status", "equals": "approved" })).matches(&data));
    assert!(!filter(json!({ "field": "status", "equals": "pending" })).matches(&data));
    assert!(
        filter(json!({ "field": "offer.id", "in": [41, 42.0] })).matches(&data),
        "numbers by value"
    );
    assert!(filter(json!({ "field": "payout", "gte": 10, "lt": 100 })).matches(&data));
    assert!(!filter(json!({ "field": "payout", "gt": 12.5 })).matches(&data));
    assert!(filter(json!({ "field": "items.0.sku", "equals": "a" })).matches(&data));
    assert!(
        !filter(json!({ "field": "status", "gt": 1 })).matches(&data),
        "not a number"
    );
}

#[test]
fn a_missing_field_fails_every_test_but_exists_false() {
    let data = json!({ "a": null });
    assert!(
        filter(json!({ "field": "a", "exists": true })).matches(&data),
        "null is present"
    );
    assert!(filter(json!({ "field": "b", "exists": false })).matches(&data));
    assert!(!filter(json!({ "field": "b", "in": [null] })).matches(&data));
    assert!(filter(json!({ "field": "a", "in": [null] })).matches(&data));
    assert!(!filter(json!({ "field": "b", "lt": 1 })).matches(&data));
    assert!(!filter(json!({ "field": "a.b.c", "exists": true })).matches(&data));
}

#[test]
fn all_any_and_not_combine_conditions() {
    let f = filter(json!({ "all": [
        { "field": "status", "in": ["approved", "paid"] },
        { "any": [{ "field": "payout", "gt": 100 }, { "field": "vip", "equals": true }] },
        { "not": { "field": "test", "equals": true } },
    ] }));
    assert!(f.matches(&json!({ "status": "paid", "vip": true })));
    assert!(f.matches(&json!({ "status": "approved", "payout": 101 })));
    assert!(!f.matches(&json!({ "status": "approved", "payout": 99 })));
    assert!(!f.matches(&json!({ "status": "paid", "vip": true, "test": true })));
}

#[test]
fn bad_filters_are_refused_naming_the_part_at_fault() {
    assert_eq!(field_of(json!({ "field": "a" })), "dataFilter");
    assert_eq!(
        field_of(json!({ "field": "a", "equals": 1, "all": [] })),
        "dataFilter"
    );
    assert_eq!(
        field_of(json!({ "all": [{ "field": "a", "gt": "x" }] })),
        "dataFilter.all[0].gt"
    );
    assert_eq!(field_of(json!({ "any": [] })), "dataFilter.any");
    assert_eq!(
        field_of(json!({ "field": "a", "in": [[1]] })),
        "dataFilter.in[0]"
    );
    assert_eq!(
        field_of(json!({ "field": "a..b", "exists": true })),
        "dataFilter.field"
    );
    assert_eq!(
        field_of(json!({ "field": "a", "equals": { "x": 1 } })),
        "dataFilter.equals"
    );
    let deep = json!({ "not": { "not": { "not": { "not": { "field": "a", "exists": true } } } } });
    assert_eq!(field_of(deep), "dataFilter.not.not.not.not");
    let wide: Vec<Value> = (0..70)
        .map(|i| json!({ "field": format!("f{i}"), "exists": true }))
        .collect();
    assert!(
        parse("dataFilter", &json!({ "any": wide })).is_err(),
        "too many conditions"
    );
    let long: Vec<Value> = (0..101).map(Value::from).collect();
    assert_eq!(
        field_of(json!({ "field": "a", "in": long })),
        "dataFilter.in"
    );
}

#[test]
fn a_stored_filter_that_no_longer_reads_matches_nothing() {
    assert_eq!(from_json(&json!({ "bogus": 1 })), DataFilter::Broken);
    assert!(!DataFilter::Broken.matches(&json!({})));
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        "[a-z]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("all"),
                        Just("any"),
                        Just("not"),
                        Just("field"),
                        Just("equals"),
                        Just("in"),
                        Just("gt"),
                        Just("exists"),
                        Just("a")
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(|pairs| Value::Object(
                pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #[test]
    fn parsing_never_panics_and_what_it_accepts_round_trips(value in any_json(), data in any_json()) {
        if let Ok(parsed) = parse("dataFilter", &value) {
            let again = parse("dataFilter", &to_json(&parsed)).expect("stored form reads");
            prop_assert_eq!(&again, &parsed);
            prop_assert_eq!(again.matches(&data), parsed.matches(&data));
        }
    }
}
