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

/// Text that cannot be an id of the kind asked for is never looked up: it is
/// `NOT_FOUND` like an id that does not exist (an id of another kind
/// included), and a filter on it matches nothing rather than failing.
#[tokio::test]
async fn ids_of_another_kind_or_shape_are_not_found_and_filter_out_everything() {
    let app = TestApp::spawn_with(|c| c.no_worker = true).await;
    let admin = app.admin("acme");
    let created = create_webhook(&app, &admin, webhook_input("http://127.0.0.1:9/")).await;
    let webhook_id = created.webhook.id.as_str();
    let event_id = publish(&app, &admin, "offer.created", json!({}))
        .await
        .event
        .id;
    for (doc, id, noun) in [
        (
            "query($id: ID!) { webhook(id: $id) { id } }",
            event_id.as_str(),
            "webhook",
        ),
        (
            "query($id: ID!) { event(id: $id) { id } }",
            webhook_id,
            "event",
        ),
        (
            "query($id: ID!) { delivery(id: $id) { id } }",
            event_id.as_str(),
            "delivery",
        ),
        (
            "mutation($id: ID!) { cancelDelivery(id: $id) { id } }",
            "dlv_x",
            "delivery",
        ),
        (
            "mutation($id: ID!) { revokeFeedLink(id: $id) { id } }",
            webhook_id,
            "feed link",
        ),
        (
            "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }",
            "wh_'--",
            "webhook",
        ),
    ] {
        let err = app.gql.err(Some(&admin), doc, json!({ "id": id })).await;
        assert_eq!(err.code(), "NOT_FOUND", "{doc} {id}");
        assert_eq!(err.message, format!("{noun} not found"), "{doc} {id}");
    }
    let data = app
        .gql
        .ok(
            &admin,
            "query($w: ID!, $e: ID!) {
                all: deliveries { edges { node { id } } }
                byWebhook: deliveries(filter: {webhookId: $w}) { edges { node { id } } }
                byEvent: deliveries(filter: {eventId: $e}) { edges { node { id } } }
                stats: deliveryStats(webhookId: $w) { pending }
            }",
            json!({ "w": event_id, "e": webhook_id }),
        )
        .await;
    assert_eq!(data["all"]["edges"].as_array().map(Vec::len), Some(1));
    assert_eq!(data["byWebhook"]["edges"], json!([]));
    assert_eq!(data["byEvent"]["edges"], json!([]));
    assert_eq!(data["stats"]["pending"], 0);
}
