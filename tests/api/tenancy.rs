//! Tenant isolation: nothing of tenant A is visible or changeable by tenant B.

use serde_json::json;

use crate::support::{TestApp, fixtures::*};

#[tokio::test]
async fn another_tenant_cannot_touch_webhooks() {
    let app = TestApp::spawn().await;
    let a = app.admin("tenant-a");
    let b = app.admin("tenant-b");
    let created = create_webhook(&app, &a, webhook_input("http://127.0.0.1:9/a")).await;
    let id = created.webhook.id.as_str();

    for (what, doc) in [
        ("read", "query($id: ID!) { webhook(id: $id) { id } }"),
        (
            "update",
            "mutation($id: ID!) { updateWebhook(id: $id, input: {name: \"pwned\"}) { id } }",
        ),
        (
            "rotate",
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
        ),
        (
            "delete",
            "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }",
        ),
    ] {
        let err = app.gql.err(Some(&b), doc, json!({ "id": id })).await;
        assert_eq!(err.code(), "NOT_FOUND", "{what}: {err}");
        assert_eq!(
            err.message, "webhook not found",
            "{what} must not reveal existence"
        );
    }
    let listed = app
        .gql
        .ok(&b, "{ webhooks { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(listed["webhooks"]["edges"], json!([]));

    // A's webhook is untouched.
    let data = app
        .gql
        .ok(
            &a,
            "query($id: ID!) { webhook(id: $id) { name } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(data["webhook"]["name"], "Conversions to CRM");
}

#[tokio::test]
async fn another_tenant_cannot_see_or_change_event_types() {
    let app = TestApp::spawn().await;
    let a = app.admin("tenant-a");
    let b = app.admin("tenant-b");
    app.gql
        .ok(
            &a,
            "mutation { createEventType(input: {name: \"invoice.paid\", description: \"An invoice was paid\"}) { name } }",
            json!({}),
        )
        .await;

    let listed = app
        .gql
        .ok(
            &b,
            "{ eventTypes(first: 100, filter: {object: \"invoice\"}) { edges { node { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["eventTypes"]["edges"], json!([]));
    for doc in [
        "{ eventType(name: \"invoice.paid\") { name } }",
        "mutation { updateEventType(name: \"invoice.paid\", input: {description: \"x\"}) { name } }",
        "mutation { archiveEventType(name: \"invoice.paid\") { name } }",
    ] {
        let err = app.gql.err(Some(&b), doc, json!({})).await;
        assert_eq!(err.code(), "NOT_FOUND", "{doc}");
    }
    // B cannot subscribe to A's type either.
    let mut input = webhook_input("http://127.0.0.1:9/b");
    input["eventTypes"] = json!(["invoice.paid"]);
    let err = app
        .gql
        .err(Some(&b), &create_webhook_doc(), json!({ "input": input }))
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT");
    // And B may define its own type with the same name.
    app.gql
        .ok(
            &b,
            "mutation { createEventType(input: {name: \"invoice.paid\", description: \"B's own\"}) { name } }",
            json!({}),
        )
        .await;
}
