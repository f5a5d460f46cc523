//! Filters on content (issue 15 item 4): conditions on `data` and label
//! filters allowing several values, checked when saved and applied at
//! publish (and by replay and preview, which read stored events).

use serde_json::{Value, json};

use crate::support::{TestApp, fixtures::*, receiver::Receiver};

async fn webhook_filtered(app: &TestApp, token: &str, url: &str, filters: Value) -> String {
    let mut input = fast_webhook(url, &["conversion.*"], 1);
    for (key, value) in filters.as_object().expect("object") {
        input[key] = value.clone();
    }
    create_webhook(app, token, input).await.webhook.id
}

async fn publish_labelled(app: &TestApp, token: &str, data: Value, campaign: &str) -> Published {
    publish_input(
        app,
        token,
        json!({ "type": "conversion.status_changed", "data": data, "labels": { "campaignId": campaign } }),
    )
    .await
}

use crate::support::types::Published;

#[tokio::test]
async fn data_and_label_filters_choose_which_webhooks_get_an_event() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let approved_big = Receiver::ok().await;
    let campaigns = Receiver::ok().await;
    let everything = Receiver::ok().await;
    webhook_filtered(
        &app,
        &admin,
        &approved_big.url,
        json!({ "dataFilter": { "all": [
            { "field": "status", "in": ["approved", "paid"] },
            { "any": [{ "field": "payout", "gte": 10 }, { "field": "partner.tier", "equals": "gold" }] },
            { "not": { "field": "test", "exists": true } },
        ] } }),
    )
    .await;
    webhook_filtered(
        &app,
        &admin,
        &campaigns.url,
        json!({ "labelFilter": { "campaignId": [42, "43"] } }),
    )
    .await;
    webhook_filtered(&app, &admin, &everything.url, json!({})).await;

    let cases = [
        (json!({ "status": "approved", "payout": 12.5 }), "42", 3),
        (
            json!({ "status": "approved", "payout": 3, "partner": { "tier": "gold" } }),
            "43",
            3,
        ),
        (json!({ "status": "approved", "payout": 3 }), "44", 1),
        (json!({ "status": "pending", "payout": 99 }), "42", 2),
        (
            json!({ "status": "paid", "payout": 99, "test": false }),
            "7",
            1,
        ),
    ];
    for (data, campaign, count) in &cases {
        let published = publish_labelled(&app, &admin, data.clone(), campaign).await;
        assert_eq!(
            published.delivery_count, *count,
            "{data} in campaign {campaign}"
        );
    }
    wait_settled(&app, &admin, WAIT).await;
    assert_eq!(approved_big.count(), 2);
    assert_eq!(campaigns.count(), 3);
    assert_eq!(everything.count(), 5);
    let got: Vec<Value> = approved_big
        .received()
        .iter()
        .map(|r| r.json()["data"].clone())
        .collect();
    assert_eq!(got, [cases[0].0.clone(), cases[1].0.clone()]);
}

#[tokio::test]
async fn a_stored_event_is_judged_by_the_data_filter_in_preview_and_replay() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    let published = publish(&app, &admin, "conversion.created", json!({ "amount": 5 })).await;
    let small = publish(&app, &admin, "conversion.created", json!({ "amount": 1 })).await;
    let id = webhook_filtered(
        &app,
        &admin,
        &receiver.url,
        json!({ "dataFilter": { "field": "amount", "gt": 2 } }),
    )
    .await;
    let preview = "query($id: ID!, $event: ID) { previewDelivery(webhookId: $id, eventId: $event) { wouldDeliver } }";
    for (event, wanted) in [(&published.event.id, true), (&small.event.id, false)] {
        let shown = app
            .gql
            .ok(&admin, preview, json!({ "id": id, "event": event }))
            .await;
        assert_eq!(shown["previewDelivery"]["wouldDeliver"], wanted, "{event}");
    }
    let replayed = app
        .gql
        .ok(
            &admin,
            "mutation($id: ID!, $since: DateTime!) { replayWebhook(id: $id, since: $since) { deliveryCount eventCount } }",
            json!({ "id": id, "since": "2000-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(replayed["replayWebhook"]["deliveryCount"], 1, "{replayed}");
    let request = receiver.wait_for(1, WAIT).await;
    assert_eq!(request[0].json()["data"], json!({ "amount": 5 }));
}

#[tokio::test]
async fn filters_are_checked_when_saved_naming_the_part_at_fault() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let cases = [
        (
            json!({ "dataFilter": { "all": [{ "field": "a", "gt": 1 }, { "field": "b" }] } }),
            "dataFilter.all[1]",
        ),
        (
            json!({ "dataFilter": { "field": "a", "equals": 1, "any": [{ "field": "b", "exists": true }] } }),
            "dataFilter",
        ),
        (
            json!({ "dataFilter": { "field": "a", "in": [{ "x": 1 }] } }),
            "dataFilter.in[0]",
        ),
        (json!({ "dataFilter": { "any": [] } }), "dataFilter.any"),
        (
            json!({ "dataFilter": { "not": { "not": { "not": { "not": { "field": "a", "exists": true } } } } } }),
            "dataFilter.not.not.not.not",
        ),
        (
            json!({ "labelFilter": { "campaignId": [] } }),
            "labelFilter.campaignId",
        ),
        (
            json!({ "labelFilter": { "campaignId": ["42", { "a": 1 }] } }),
            "labelFilter.campaignId[1]",
        ),
    ];
    for (extra, field) in cases {
        let mut input = fast_webhook("https://t.example/hook", &["conversion.*"], 1);
        for (key, value) in extra.as_object().expect("object") {
            input[key] = value.clone();
        }
        let err = app
            .gql
            .err(
                Some(&admin),
                &create_webhook_doc(),
                json!({ "input": input }),
            )
            .await;
        assert_eq!(err.code(), "BAD_USER_INPUT", "{extra}: {}", err.message);
        assert_eq!(
            err.extensions.field.as_deref(),
            Some(field),
            "{extra}: {}",
            err.message
        );
    }
}

#[tokio::test]
async fn filters_are_shown_as_saved_and_cleared_with_null() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let id = webhook_filtered(
        &app,
        &admin,
        "https://t.example/hook",
        json!({
            "dataFilter": { "field": "payout", "gte": 10, "lt": 100 },
            "labelFilter": { "campaignId": ["43", 42], "login": "aff-7" },
        }),
    )
    .await;
    let read = "query($id: ID!) { webhook(id: $id) { dataFilter labelFilter } }";
    let shown = app.gql.ok(&admin, read, json!({ "id": id })).await["webhook"].clone();
    assert_eq!(
        shown["dataFilter"],
        json!({ "field": "payout", "gte": 10.0, "lt": 100.0 })
    );
    assert_eq!(
        shown["labelFilter"],
        json!({ "campaignId": ["42", "43"], "login": "aff-7" })
    );
    let update =
        "mutation($id: ID!) { updateWebhook(id: $id, input: { dataFilter: null }) { dataFilter } }";
    let cleared = app.gql.ok(&admin, update, json!({ "id": id })).await;
    assert_eq!(cleared["updateWebhook"]["dataFilter"], Value::Null);
}
