//! What a payload schema costs to evaluate, measured when it is saved.
//!
//! Checking a payload runs every subschema that applies at each place in the
//! data, so the work is about (subschemas × data nodes). Bytes alone do not
//! bound the first factor: a few hundred bytes of `$ref`s that each point
//! twice at the next definition expand to millions of subschemas, and a
//! `$ref` cycle that does not step into the data never ends. So the measure
//! is the schema's *weight*: every subschema counted once per path that
//! reaches it (each `$ref` counts as the schema it points to), plus its
//! `enum` values and `required` names, which are compared one by one.
//! Schemas heavier than [`MAX_WEIGHT`], with more than [`MAX_BRANCHES`]
//! branches in one `allOf`/`anyOf`/`oneOf`, or with references the measure
//! cannot follow, are refused.

use std::collections::HashMap;

use serde_json::Value;

/// Most subschemas (with `$ref`s expanded), `enum` values and `required`
/// names one schema may weigh.
pub const MAX_WEIGHT: usize = 2_000;
/// Most branches in one `allOf`, `anyOf` or `oneOf`.
pub const MAX_BRANCHES: usize = 100;

/// Keywords whose value is one subschema applied to the data.
const ONE: &[&str] = &[
    "additionalItems",
    "additionalProperties",
    "contains",
    "contentSchema",
    "else",
    "if",
    "items",
    "not",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
];
/// Keywords whose value is a list of subschemas.
const LIST: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems", "items"];
/// Keywords whose value maps names to subschemas.
const MAP: &[&str] = &[
    "dependencies",
    "dependentSchemas",
    "patternProperties",
    "properties",
];
/// Keywords that resolve against something other than a JSON pointer into
/// this schema.
const REFUSED: &[&str] = &["$dynamicRef", "$recursiveRef"];

/// The schema's weight, or why it is refused.
pub fn weight(schema: &Value) -> Result<usize, String> {
    // Totals of the subschemas `$ref`s point to, by identity of the node.
    let mut memo: HashMap<*const Value, State> = HashMap::new();
    // Depth-first over `$ref` targets with our own stack (a frame is a
    // subschema, its own weight so far, and the next `$ref` to follow): a
    // node's total is its own weight plus the totals of its targets.
    let mut stack: Vec<(*const Value, Local, usize)> =
        vec![(std::ptr::from_ref(schema), local(schema, schema, true)?, 0)];
    memo.insert(std::ptr::from_ref(schema), State::Visiting);
    while let Some((node, here, next)) = stack.last_mut() {
        if let Some(&target) = here.refs.get(*next) {
            *next += 1;
            let key = std::ptr::from_ref(target);
            match memo.get(&key).copied() {
                Some(State::Visiting) => {
                    return Err("must not refer to itself through `$ref`".into());
                }
                Some(State::Done(total)) => here.weight = here.weight.saturating_add(total),
                None => {
                    memo.insert(key, State::Visiting);
                    let frame = (key, local(schema, target, false)?, 0);
                    stack.push(frame);
                    continue;
                }
            }
        } else {
            let (node, total) = (*node, here.weight);
            memo.insert(node, State::Done(total));
            stack.pop();
            match stack.last_mut() {
                Some((_, parent, _)) => parent.weight = parent.weight.saturating_add(total),
                None => return Ok(total),
            }
        }
        if stack
            .last()
            .is_some_and(|(_, here, _)| here.weight > MAX_WEIGHT)
        {
            return Err(too_heavy());
        }
    }
    Err(too_heavy())
}

fn too_heavy() -> String {
    format!(
        "is too costly to evaluate: at most {MAX_WEIGHT} subschemas (each `$ref` counted as \
         the schema it points to), `enum` values and `required` names"
    )
}

#[derive(Clone, Copy)]
enum State {
    Visiting,
    Done(usize),
}

/// One subschema's own weight, without following `$ref`s, and the
/// subschemas its `$ref`s point to.
struct Local<'a> {
    weight: usize,
    refs: Vec<&'a Value>,
}

/// Walks `node`'s subschemas (not into `$defs`: definitions cost only where
/// they are referenced).
fn local<'a>(root: &'a Value, node: &'a Value, is_root: bool) -> Result<Local<'a>, String> {
    let mut out = Local {
        weight: 0,
        refs: Vec::new(),
    };
    let mut stack = vec![(node, is_root)];
    while let Some((schema, at_root)) = stack.pop() {
        out.weight += 1;
        let Value::Object(map) = schema else {
            continue;
        };
        if !at_root && (map.contains_key("$id") || map.contains_key("id")) {
            return Err("may set `$id` only at its root".into());
        }
        if let Some(keyword) = REFUSED.iter().find(|k| map.contains_key(**k)) {
            return Err(format!("must not use `{keyword}`"));
        }
        for keyword in ["enum", "required"] {
            if let Some(Value::Array(items)) = map.get(keyword) {
                out.weight += items.len();
            }
        }
        if let Some(reference) = map.get("$ref") {
            out.refs.push(resolve(root, reference)?);
        }
        for keyword in ONE {
            if let Some(sub @ (Value::Object(_) | Value::Bool(_))) = map.get(*keyword) {
                stack.push((sub, false));
            }
        }
        for keyword in LIST {
            if let Some(Value::Array(items)) = map.get(*keyword) {
                if items.len() > MAX_BRANCHES && *keyword != "prefixItems" && *keyword != "items" {
                    return Err(format!(
                        "must have at most {MAX_BRANCHES} branches in one `{keyword}`"
                    ));
                }
                stack.extend(items.iter().map(|sub| (sub, false)));
            }
        }
        for keyword in MAP {
            if let Some(Value::Object(entries)) = map.get(*keyword) {
                stack.extend(
                    entries
                        .values()
                        .filter(|v| matches!(v, Value::Object(_) | Value::Bool(_)))
                        .map(|sub| (sub, false)),
                );
            }
        }
        if out.weight > MAX_WEIGHT {
            return Err(too_heavy());
        }
    }
    Ok(out)
}

/// The subschema a `$ref` points to: only `#` and `#/json/pointer` inside
/// this schema are followed.
fn resolve<'a>(root: &'a Value, reference: &Value) -> Result<&'a Value, String> {
    let refused = || {
        Err(format!(
            "`$ref` must point inside the schema (`#` or `#/a/json/pointer`), not {reference}"
        ))
    };
    let Some(text) = reference.as_str() else {
        return refused();
    };
    let Some(pointer) = text.strip_prefix('#') else {
        return refused();
    };
    if !(pointer.is_empty() || pointer.starts_with('/')) || pointer.contains('%') {
        return refused();
    }
    match root.pointer(pointer) {
        Some(target @ (Value::Object(_) | Value::Bool(_))) => Ok(target),
        _ => refused(),
    }
}

/// Nodes (values of any kind) in a piece of data: the other factor of the
/// work of checking it.
pub fn data_nodes(value: &Value) -> usize {
    let mut count = 0;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        count += 1;
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn weight_counts_each_subschema_enum_value_and_required_name() {
        assert_eq!(weight(&json!(true)), Ok(1));
        assert_eq!(weight(&json!({ "type": "string" })), Ok(1));
        let schema = json!({
            "type": "object",
            "required": ["id", "amount"],
            "properties": {
                "id": { "type": "string" },
                "amount": { "type": "number", "not": { "const": 0 } },
                "currency": { "enum": ["EUR", "USD", "GBP"] },
                "lines": { "type": "array", "items": { "type": "object" } },
            },
        });
        // root + 2 required + id + amount + not + currency + 3 enum + lines + items
        assert_eq!(weight(&schema), Ok(12));
    }

    #[test]
    fn each_ref_counts_as_the_schema_it_points_to() {
        let schema = json!({
            "$defs": { "money": { "type": "object", "properties": { "value": { "type": "number" } } } },
            "properties": {
                "price": { "$ref": "#/$defs/money" },
                "tax": { "$ref": "#/$defs/money" },
            },
        });
        // root + price + tax, each + money (2)
        assert_eq!(weight(&schema), Ok(7));
    }

    /// `steps` definitions, each pointing twice at the next.
    fn doubling(steps: usize) -> Value {
        let mut defs = serde_json::Map::new();
        for n in 0..steps {
            let next = json!({ "$ref": format!("#/$defs/d{}", n + 1) });
            defs.insert(format!("d{n}"), json!({ "allOf": [next.clone(), next] }));
        }
        defs.insert(format!("d{steps}"), json!({ "type": "string" }));
        json!({ "$defs": defs, "$ref": "#/$defs/d0" })
    }

    #[test]
    fn references_that_double_at_each_step_are_refused() {
        // 30 definitions, each pointing twice at the next: 2^30 subschemas
        // in under 2 KB.
        let schema = doubling(30);
        assert!(serde_json::to_string(&schema).expect("json").len() < 2_000);
        let err = weight(&schema).expect_err("refused");
        assert!(err.contains("too costly"), "{err}");
        // Eight doublings weigh 2^10 - 2 (each step: itself, its two
        // `$ref`s and twice the next): allowed; nine are not.
        assert_eq!(weight(&doubling(8)), Ok((1 << 10) - 2));
        assert!(weight(&doubling(9)).is_err());
    }

    #[test]
    fn many_branches_are_refused_naming_the_keyword() {
        let branches: Vec<Value> = (0..=MAX_BRANCHES)
            .map(|n| json!({ "minimum": n }))
            .collect();
        let err = weight(&json!({ "anyOf": branches })).expect_err("refused");
        assert!(err.contains("`anyOf`"), "{err}");
        let allowed: Vec<Value> = (0..MAX_BRANCHES).map(|n| json!({ "minimum": n })).collect();
        assert_eq!(weight(&json!({ "allOf": allowed })), Ok(MAX_BRANCHES + 1));
    }

    #[test]
    fn a_schema_heavier_than_the_bound_is_refused() {
        let properties: serde_json::Map<String, Value> = (0..MAX_WEIGHT)
            .map(|n| (format!("p{n}"), json!({ "type": "integer" })))
            .collect();
        let err = weight(&json!({ "properties": properties })).expect_err("refused");
        assert!(err.contains("too costly"), "{err}");
        let big_enum: Vec<usize> = (0..MAX_WEIGHT).collect();
        assert!(weight(&json!({ "enum": big_enum })).is_err());
    }

    #[test]
    fn cycles_and_references_it_cannot_follow_are_refused() {
        for schema in [
            json!({ "$ref": "#" }),
            json!({ "$defs": { "a": { "allOf": [{ "$ref": "#/$defs/b" }] }, "b": { "$ref": "#/$defs/a" } }, "$ref": "#/$defs/a" }),
            json!({ "properties": { "child": { "$ref": "#" } } }),
            json!({ "$ref": "https://example.com/schema.json" }),
            json!({ "$ref": "#/$defs/missing" }),
            json!({ "$ref": "#anchor" }),
            json!({ "$dynamicRef": "#node" }),
            json!({ "properties": { "a": { "$id": "https://example.com/a", "$ref": "#/x" } } }),
        ] {
            assert!(weight(&schema).is_err(), "{schema}");
        }
    }

    #[test]
    fn data_nodes_counts_every_value() {
        assert_eq!(data_nodes(&json!(1)), 1);
        assert_eq!(data_nodes(&json!({ "a": [1, 2, { "b": null }] })), 6);
    }
}
