//! No text a client sends may hold the NUL character (U+0000).
//!
//! PostgreSQL's `text` and `jsonb` cannot store it, and a statement that
//! binds it fails as a whole: a label value, an idempotency key, a search
//! term or an id with a NUL answered "internal error" (and took the other
//! submissions of a shared commit down with it). Checking every argument of
//! the operation once, after parsing and before any resolver runs, covers
//! every field (names, labels, keys, filters, search terms, ids, headers,
//! URLs, schemas, variables and literals alike) without a check in each, and
//! the error names the field the way the domain's validation does
//! (`inputs[3].labels.campaignId`).
//!
//! The one exception is an event's `data`: it is stored as JSON text, where
//! a NUL is the six characters `\u0000`, and is delivered exactly as sent.

use std::{collections::HashSet, sync::Arc};

use async_graphql::{
    Name, ServerResult, Value as ConstValue, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{ExecutableDocument, Field, Selection, SelectionSet},
};
use async_graphql_value::Value;

use crate::error::AppError;

/// Input fields whose JSON is stored as text and may therefore hold a NUL:
/// the root field and the path below it, list indices written `[]`.
const STORED_AS_JSON_TEXT: &[(&str, &str)] = &[
    ("publishEvent", "input.data"),
    ("publishEvents", "inputs[].data"),
];

const MESSAGE: &str = "must not contain the NUL character (U+0000)";

/// Runs [`check`] on every operation the schema parses.
pub struct NulText;

impl ExtensionFactory for NulText {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(NulTextExtension)
    }
}

struct NulTextExtension;

#[async_trait::async_trait]
impl Extension for NulTextExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        check(&document, variables).map_err(|error| super::errors::server_error(error.into()))?;
        Ok(document)
    }
}

/// Refuses a document whose arguments (literal, from variables or from
/// variable defaults) hold a NUL in any string or object key.
pub fn check(document: &ExecutableDocument, variables: &Variables) -> Result<(), AppError> {
    let mut sets: Vec<&SelectionSet> = Vec::new();
    for (_, operation) in document.operations.iter() {
        for definition in &operation.node.variable_definitions {
            if let Some(default) = &definition.node.default_value {
                let walk = Walk::new("", variables);
                walk.run(
                    definition.node.name.node.as_str(),
                    Item::Const(&default.node),
                )?;
            }
        }
        sets.push(&operation.node.selection_set.node);
    }
    let mut fragments_seen = HashSet::new();
    while let Some(set) = sets.pop() {
        for selection in &set.items {
            for directive in selection.node.directives() {
                check_arguments("", &directive.node.arguments, variables)?;
            }
            match &selection.node {
                Selection::Field(field) => {
                    check_field(&field.node, variables)?;
                    sets.push(&field.node.selection_set.node);
                }
                Selection::InlineFragment(fragment) => {
                    sets.push(&fragment.node.selection_set.node);
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if fragments_seen.insert(name.clone())
                        && let Some(fragment) = document.fragments.get(name)
                    {
                        sets.push(&fragment.node.selection_set.node);
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_field(field: &Field, variables: &Variables) -> Result<(), AppError> {
    check_arguments(field.name.node.as_str(), &field.arguments, variables)
}

type Arguments = Vec<(
    async_graphql::Positioned<Name>,
    async_graphql::Positioned<Value>,
)>;

fn check_arguments(
    field: &str,
    arguments: &Arguments,
    variables: &Variables,
) -> Result<(), AppError> {
    let walk = Walk::new(field, variables);
    for (name, value) in arguments {
        walk.run(name.node.as_str(), Item::Literal(&value.node))?;
    }
    Ok(())
}

/// A value in the document, or one a variable supplied.
#[derive(Clone, Copy)]
enum Item<'a> {
    Literal(&'a Value),
    Const(&'a ConstValue),
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Every node visited: its parent and its place in the parent.
type Nodes<'a> = Vec<(Option<usize>, Segment<'a>)>;

/// One argument's value, walked with an explicit stack (variables may nest
/// as deeply as their JSON allows). Each node records its parent, so the
/// path is only spelled out for the error.
struct Walk<'a> {
    field: &'a str,
    variables: &'a Variables,
}

impl<'a> Walk<'a> {
    fn new(field: &'a str, variables: &'a Variables) -> Self {
        Self { field, variables }
    }

    fn run(&self, argument: &'a str, value: Item<'a>) -> Result<(), AppError> {
        let mut nodes: Nodes<'a> = vec![(None, Segment::Key(argument))];
        let mut stack: Vec<(usize, Item<'a>)> = vec![(0, value)];
        while let Some((node, item)) = stack.pop() {
            let mut children: Vec<(Segment<'a>, Item<'a>)> = Vec::new();
            let nul = match item {
                Item::Literal(Value::Variable(name)) => {
                    if let Some(value) = self.variables.get(name) {
                        stack.push((node, Item::Const(value)));
                    }
                    false
                }
                Item::Literal(Value::String(text)) | Item::Const(ConstValue::String(text)) => {
                    text.contains('\0')
                }
                Item::Literal(Value::List(items)) => {
                    children.extend(
                        (items.iter().enumerate())
                            .map(|(i, v)| (Segment::Index(i), Item::Literal(v))),
                    );
                    false
                }
                Item::Const(ConstValue::List(items)) => {
                    children.extend(
                        (items.iter().enumerate())
                            .map(|(i, v)| (Segment::Index(i), Item::Const(v))),
                    );
                    false
                }
                Item::Literal(Value::Object(map)) => {
                    children.extend(
                        map.iter()
                            .map(|(k, v)| (Segment::Key(k.as_str()), Item::Literal(v))),
                    );
                    false
                }
                Item::Const(ConstValue::Object(map)) => {
                    children.extend(
                        map.iter()
                            .map(|(k, v)| (Segment::Key(k.as_str()), Item::Const(v))),
                    );
                    false
                }
                _ => false,
            };
            if nul {
                return Err(AppError::bad_input(path(&nodes, node), MESSAGE));
            }
            for (segment, item) in children {
                nodes.push((Some(node), segment));
                let index = nodes.len() - 1;
                if matches!(segment, Segment::Key(key) if key.contains('\0')) {
                    return Err(AppError::bad_input(path(&nodes, index), MESSAGE));
                }
                if !self.stored_as_text(&nodes, index) {
                    stack.push((index, item));
                }
            }
        }
        Ok(())
    }

    /// Whether the node at `index` is one of [`STORED_AS_JSON_TEXT`].
    fn stored_as_text(&self, nodes: &Nodes<'_>, index: usize) -> bool {
        if !matches!(nodes[index].1, Segment::Key("data")) {
            return false;
        }
        let pattern = spell(nodes, index, |_| "[]".to_owned());
        STORED_AS_JSON_TEXT
            .iter()
            .any(|(field, path)| *field == self.field && *path == pattern)
    }
}

/// The path of a node as the domain's validation names fields:
/// `inputs[3].labels.campaignId`, without the `input.` of a single input.
fn path(nodes: &Nodes<'_>, index: usize) -> String {
    let full = spell(nodes, index, |i| format!("[{i}]"));
    match full.strip_prefix("input.") {
        Some(rest) => rest.to_owned(),
        None => full,
    }
}

fn spell(nodes: &Nodes<'_>, index: usize, list_index: impl Fn(usize) -> String) -> String {
    let mut segments = Vec::new();
    let mut at = Some(index);
    while let Some(i) = at {
        segments.push(nodes[i].1);
        at = nodes[i].0;
    }
    let mut text = String::new();
    for segment in segments.into_iter().rev() {
        match segment {
            Segment::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(&key.replace('\0', "\\u0000"));
            }
            Segment::Index(i) => text.push_str(&list_index(i)),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;
    use serde_json::json;

    use super::*;

    fn field_of(query: &str, variables: serde_json::Value) -> Option<String> {
        let document = parse_query(query).expect("parses");
        let variables = Variables::from_json(variables);
        match check(&document, &variables) {
            Ok(()) => None,
            Err(AppError::BadInput { field, .. }) => Some(field),
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn literals_and_variables_name_the_field() {
        assert_eq!(
            field_of(
                r#"{ webhooks(filter: {search: "a\u0000"}) { id } }"#,
                json!({})
            ),
            Some("filter.search".into())
        );
        assert_eq!(
            field_of(
                "mutation($i: [PublishEventInput!]!) { publishEvents(inputs: $i) { duplicate } }",
                json!({ "i": [{}, {}, {}, { "labels": { "campaignId": "x\u{0}" } }] })
            ),
            Some("inputs[3].labels.campaignId".into())
        );
        assert_eq!(
            field_of(
                "mutation($k: String) { publishEvent(input: {idempotencyKey: $k}) { duplicate } }",
                json!({ "k": "\u{0}" })
            ),
            Some("idempotencyKey".into())
        );
        assert_eq!(
            field_of(
                "query($id: ID! = \"wh_\\u0000\") { webhook(id: $id) { id } }",
                json!({})
            ),
            Some("id".into())
        );
        assert_eq!(
            field_of(
                "{ ...F } fragment F on Query { webhook(id: \"\\u0000\") { id } }",
                json!({})
            ),
            Some("id".into())
        );
        assert_eq!(
            field_of(
                "mutation($s: JSON) { createEventType(input: {schema: $s}) { name } }",
                json!({ "s": { "properties": { "a\u{0}": {} } } })
            ),
            Some("schema.properties.a\\u0000".into())
        );
    }

    #[test]
    fn event_data_may_hold_nul_and_nothing_else_is_exempt() {
        let publish =
            "mutation($d: JSON!) { publishEvent(input: {type: \"a.b\", data: $d}) { duplicate } }";
        assert_eq!(field_of(publish, json!({ "d": { "s": "\u{0}" } })), None);
        let batch = "mutation($d: JSON!) { publishEvents(inputs: [{type: \"a.b\", data: {}}, {type: \"a.b\", data: $d}]) { duplicate } }";
        assert_eq!(field_of(batch, json!({ "d": ["\u{0}"] })), None);
        let elsewhere = "mutation($d: JSON!) { createEventType(input: {name: \"a.b\", schema: {data: $d}}) { name } }";
        assert_eq!(
            field_of(elsewhere, json!({ "d": "\u{0}" })),
            Some("schema.data".into())
        );
    }

    #[test]
    fn ordinary_documents_pass() {
        assert_eq!(
            field_of(
                "query($f: WebhookFilter) { webhooks(filter: $f, first: 3) @include(if: true) { id } }",
                json!({ "f": { "search": "tab\tand more", "team": null }, "unused": "\u{0}" })
            ),
            None
        );
    }
}
