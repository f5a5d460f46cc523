//! The event catalog and tenant-defined event types.

use serde_json::{Value, json};

use crate::support::{TestApp, fixtures::*};

#[tokio::test]
async fn the_catalog_covers_the_seed_platforms() {
    let app = TestApp::spawn().await;
    let token = app.admin("acme");
    let mut names = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .gql
            .ok(
                &token,
                "query($after: String) { eventTypes(first: 20, after: $after) {
                    edges { node { name object action builtIn description } }
                    pageInfo { hasNextPage endCursor } } }",
                json!({ "after": after }),
            )
            .await;
        for edge in data["eventTypes"]["edges"].as_array().expect("edges") {
            let node = &edge["node"];
            let name = node["name"].as_str().expect("name");
            assert_eq!(
                format!(
                    "{}.{}",
                    node["object"].as_str().expect("o"),
                    node["action"].as_str().expect("a")
                ),
                name
            );
            assert_eq!(node["builtIn"], true);
            assert!(!node["description"].as_str().expect("d").is_empty());
            names.push(name.to_owned());
        }
        if data["eventTypes"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = data["eventTypes"]["pageInfo"]["endCursor"].clone();
    }
    for expected in [
        "affiliate.created",
        "affiliate.status_changed",
        "affiliate.tier_changed",
        "advertiser.updated",
        "offer.created",
        "offer.updated",
        "goal.deleted",
        "landing_page.created",
        "creative.updated",
        "smart_link.deleted",
        "conversion.status_changed",
        "click.created",
        "coupon.created",
        "settlement.created",
        "ticket.created",
        "ticket.updated",
        "contact.created",
        "contact.added_to_segment",
        "contact.added_to_campaign",
        "commission.status_changed",
        "payout.created",
        "referral.created",
        "share.tracked",
        "click.tracked",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "catalog lacks {expected}"
        );
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "ordered by name");

    let offers = app
        .gql
        .ok(
            &token,
            "{ eventTypes(filter: {object: \"offer\"}) { edges { node { action } } } }",
            json!({}),
        )
        .await;
    let actions: Vec<&str> = offers["eventTypes"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"]["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["created", "deleted", "updated"]);
}

#[tokio::test]
async fn custom_types_are_created_validated_updated_and_archived() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let create = "mutation($input: CreateEventTypeInput!) { createEventType(input: $input) {
        name object action description schema builtIn archived createdAt } }";
    let schema = json!({
        "type": "object",
        "required": ["invoiceId", "amount"],
        "properties": { "invoiceId": { "type": "string" }, "amount": { "type": "number" } }
    });
    let created = app
        .gql
        .ok(&admin, create, json!({ "input": { "name": "invoice.paid", "description": "An invoice was paid", "schema": schema } }))
        .await;
    let created = &created["createEventType"];
    assert_eq!(created["object"], "invoice");
    assert_eq!(created["action"], "paid");
    assert_eq!(created["builtIn"], false);
    assert_eq!(created["schema"], schema);

    for (input, code, field) in [
        (
            json!({ "name": "invoice.paid", "description": "again" }),
            "CONFLICT",
            None,
        ),
        (
            json!({ "name": "offer.created", "description": "built in" }),
            "CONFLICT",
            None,
        ),
        (
            json!({ "name": "Invoice Paid", "description": "x" }),
            "BAD_USER_INPUT",
            Some("name"),
        ),
        (
            json!({ "name": "invoice.voided", "description": "" }),
            "BAD_USER_INPUT",
            Some("description"),
        ),
        (
            json!({ "name": "invoice.voided", "description": "x", "schema": { "type": "no-such-type" } }),
            "BAD_USER_INPUT",
            Some("schema"),
        ),
        (
            json!({ "name": "invoice.voided", "description": "x", "schema": [1, 2] }),
            "BAD_USER_INPUT",
            Some("schema"),
        ),
    ] {
        let err = app
            .gql
            .err(Some(&admin), create, json!({ "input": input }))
            .await;
        assert_eq!(err.code(), code, "{input}: {err}");
        if let Some(field) = field {
            assert_eq!(err.field(), Some(field));
        }
    }

    let updated = app
        .gql
        .ok(
            &admin,
            "mutation { updateEventType(name: \"invoice.paid\", input: {description: \"Paid in full\", schema: null}) { description schema } }",
            json!({}),
        )
        .await;
    assert_eq!(
        updated["updateEventType"],
        json!({ "description": "Paid in full", "schema": null })
    );
    let err = app
        .gql
        .err(Some(&admin), "mutation { updateEventType(name: \"offer.created\", input: {description: \"x\"}) { name } }", json!({}))
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT");

    // A webhook can subscribe to the custom type, by name or by object.
    let mut input = webhook_input("http://127.0.0.1:9/hook");
    input["eventTypes"] = json!(["invoice.paid", "invoice.*"]);
    create_webhook(&app, &admin, input.clone()).await;

    // Archived: hidden from the list and from new subscriptions.
    app.gql
        .ok(
            &admin,
            "mutation { archiveEventType(name: \"invoice.paid\") { archived } }",
            json!({}),
        )
        .await;
    let listed = app
        .gql
        .ok(
            &admin,
            "{ eventTypes(filter: {object: \"invoice\"}) { edges { node { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["eventTypes"]["edges"], json!([]));
    let with_archived = app
        .gql
        .ok(&admin, "{ eventTypes(filter: {object: \"invoice\", includeArchived: true}) { edges { node { name archived } } } }", json!({}))
        .await;
    assert_eq!(
        with_archived["eventTypes"]["edges"][0]["node"]["archived"],
        true
    );
    let err = app
        .gql
        .err(
            Some(&admin),
            &create_webhook_doc(),
            json!({ "input": input }),
        )
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT");

    app.gql
        .ok(
            &admin,
            "mutation { unarchiveEventType(name: \"invoice.paid\") { archived } }",
            json!({}),
        )
        .await;
    create_webhook(&app, &admin, input).await;
}
