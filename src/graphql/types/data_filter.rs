//! The GraphQL shape of a filter on an event's `data` (see
//! `domain::data_filter`, which checks it).

use async_graphql::{InputObject, Json};
use serde_json::{Map, Value};

/// A condition on the event's `data`: exactly one of `all`, `any`, `not`,
/// or `field` with one or more tests (which must all hold). For example
/// `{ all: [{ field: "status", in: ["approved", "paid"] },
/// { field: "payout", gte: 10 }] }`. At most 4 levels deep and 64
/// conditions; checked when saved.
#[derive(InputObject)]
pub struct DataFilterInput {
    /// Every condition holds.
    all: Option<Vec<DataFilterInput>>,
    /// At least one condition holds.
    any: Option<Vec<DataFilterInput>>,
    /// The condition does not hold.
    not: Option<Box<DataFilterInput>>,
    /// A field of `data` by dotted path: `status`, `offer.id`, `items.0.sku`.
    field: Option<String>,
    /// The field equals this string, number or boolean (numbers by value).
    equals: Option<Json<Value>>,
    /// The field equals one of these (at most 100).
    #[graphql(name = "in")]
    one_of: Option<Vec<Json<Value>>>,
    /// The field is a number greater than this.
    gt: Option<f64>,
    gte: Option<f64>,
    lt: Option<f64>,
    lte: Option<f64>,
    /// The field is present (`true`, even when null) or absent (`false`).
    exists: Option<bool>,
}

impl DataFilterInput {
    /// The JSON the domain reads: the same names, absent fields left out.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        let list = |items: &Vec<DataFilterInput>| {
            Value::from(items.iter().map(Self::to_json).collect::<Vec<_>>())
        };
        if let Some(items) = &self.all {
            map.insert("all".into(), list(items));
        }
        if let Some(items) = &self.any {
            map.insert("any".into(), list(items));
        }
        if let Some(inner) = &self.not {
            map.insert("not".into(), inner.to_json());
        }
        if let Some(field) = &self.field {
            map.insert("field".into(), Value::String(field.clone()));
        }
        if let Some(value) = &self.equals {
            map.insert("equals".into(), value.0.clone());
        }
        if let Some(values) = &self.one_of {
            map.insert(
                "in".into(),
                Value::from(values.iter().map(|v| v.0.clone()).collect::<Vec<_>>()),
            );
        }
        for (name, number) in [
            ("gt", self.gt),
            ("gte", self.gte),
            ("lt", self.lt),
            ("lte", self.lte),
        ] {
            if let Some(number) = number {
                map.insert(name.into(), Value::from(number));
            }
        }
        if let Some(exists) = self.exists {
            map.insert("exists".into(), Value::Bool(exists));
        }
        Value::Object(map)
    }
}
