//! Text the database cannot store (the NUL character) is refused up front,
//! naming the field, on every kind of input: PostgreSQL's text and jsonb
//! cannot hold it, and it used to come back as an internal error there.

use serde_json::{Value, json};

use crate::support::{TestApp, fixtures::*};

const PUBLISH_MANY: &str = "mutation($inputs: [PublishEventInput!]!) {
    publishEvents(inputs: $inputs) { event { id } } }";

fn offer(extra: Value) -> Value {
    let mut input = json!({ "type": "offer.created", "data": { "offerId": "o1" } });
    for (key, value) in extra.as_object().expect("object") {
        input[key] = value.clone();
    }
    input
}

fn webhook_with(patch: Value) -> Value {
    let mut input = webhook_input("http://127.0.0.1:9/hook");
    for (key, value) in patch.as_object().expect("object") {
        input[key] = value.clone();
    }
    input
}

#[tokio::test]
async fn a_nul_character_in_any_text_input_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let created = create_webhook(&app, &admin, webhook_input("http://127.0.0.1:9/a")).await;
    let webhook_id = created.webhook.id;
    let nul = "x\u{0}y";
    let create_event_type =
        "mutation($input: CreateEventTypeInput!) { createEventType(input: $input) { name } }";
    let update_webhook = "mutation($id: ID!, $input: UpdateWebhookInput!) {
        updateWebhook(id: $id, input: $input) { id } }";
    let cases: Vec<(&str, String, Value, &str)> = vec![
        // Labels, idempotency keys: in a batch the input is named.
        (
            "label value",
            PUBLISH_MANY.into(),
            json!({ "inputs": [offer(json!({})), offer(json!({})), offer(json!({})),
                offer(json!({ "labels": { "campaignId": nul } }))] }),
            "inputs[3].labels.campaignId",
        ),
        (
            "idempotency key",
            PUBLISH.into(),
            json!({ "input": offer(json!({ "idempotencyKey": nul })) }),
            "idempotencyKey",
        ),
        (
            "event type name in a publish",
            PUBLISH.into(),
            json!({ "input": { "type": nul, "data": {} } }),
            "type",
        ),
        // Webhooks: names, label filters, headers, URLs, event type patterns.
        (
            "label filter",
            create_webhook_doc(),
            json!({ "input": webhook_with(json!({ "labelFilter": { "campaignId": nul } })) }),
            "labelFilter.campaignId",
        ),
        (
            "webhook name",
            create_webhook_doc(),
            json!({ "input": webhook_with(json!({ "name": nul })) }),
            "name",
        ),
        (
            "header value",
            create_webhook_doc(),
            json!({ "input": webhook_with(json!({ "endpoints": [{ "url": "http://127.0.0.1:9/b",
                "headers": [{ "name": "X-Key", "value": nul }] }] })) }),
            "endpoints[0].headers[0].value",
        ),
        (
            "endpoint url",
            create_webhook_doc(),
            json!({ "input": webhook_with(json!({ "endpoints": [{ "url": format!("http://127.0.0.1:9/{nul}") }] })) }),
            "endpoints[0].url",
        ),
        (
            "event type pattern",
            update_webhook.into(),
            json!({ "id": webhook_id, "input": { "eventTypes": ["offer.created", nul] } }),
            "eventTypes[1]",
        ),
        // Event types: names, descriptions, schemas (keys and values).
        (
            "event type description",
            create_event_type.into(),
            json!({ "input": { "name": "invoice.paid", "description": nul } }),
            "description",
        ),
        (
            "schema key",
            create_event_type.into(),
            json!({ "input": { "name": "invoice.paid", "description": "Paid",
                "schema": { "type": "object", "properties": { nul: { "type": "string" } } } } }),
            "schema.properties.x\\u0000y",
        ),
        // Filters, searches and lookups used in SQL.
        (
            "webhook search",
            "query($s: String) { webhooks(filter: {search: $s}) { edges { node { id } } } }".into(),
            json!({ "s": nul }),
            "filter.search",
        ),
        (
            "event type filter",
            "query($t: String) { events(filter: {type: $t}) { edges { node { id } } } }".into(),
            json!({ "t": nul }),
            "filter.type",
        ),
        (
            "id lookup",
            "query($id: ID!) { webhook(id: $id) { id } }".into(),
            json!({ "id": format!("wh_{nul}") }),
            "id",
        ),
        (
            "literal in the query text",
            r#"{ eventTypes(filter: {search: "a\u0000"}) { edges { node { name } } } }"#.into(),
            json!({}),
            "filter.search",
        ),
    ];
    for (what, query, variables, field) in cases {
        let err = app.gql.err(Some(&admin), &query, variables).await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{what}: {err}");
        assert_eq!(err.field(), Some(field), "{what}: {err}");
        assert!(err.message.contains("NUL"), "{what}: {err}");
    }
    // Nothing of the refused batch was stored, and the service goes on.
    let data = app
        .gql
        .ok(
            &admin,
            "{ events(first: 10) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["events"]["edges"], json!([]));
    publish(&app, &admin, "offer.created", json!({ "offerId": "o2" })).await;
}
