//! `replayWebhook`: every matching event of the window, what did not arrive
//! by default, everything on request, bounded per call.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    fixtures::*,
    receiver::{Receiver, Reply},
};

const REPLAY: &str = "mutation($w: ID!, $since: DateTime!, $until: DateTime,
    $statuses: [DeliveryStatus!], $after: String) {
  replayWebhook(id: $w, since: $since, until: $until, statuses: $statuses, after: $after) {
    deliveryCount eventCount skippedCount complete after } }";

const PUBLISH_MANY: &str = "mutation($inputs: [PublishEventInput!]!) {
    publishEvents(inputs: $inputs) { deliveryCount } }";

const PAUSE: &str = "mutation($id: ID!, $status: WebhookStatus!) {
    updateWebhook(id: $id, input: { status: $status }) { status } }";

async fn replay(app: &TestApp, token: &str, variables: Value) -> Value {
    app.gql.ok(token, REPLAY, variables).await["replayWebhook"].clone()
}

fn long_ago() -> String {
    "2020-01-01T00:00:00Z".to_owned()
}

/// Waits until every delivery of the tenant is settled (none open).
async fn settled(app: &TestApp, token: &str) {
    wait_settled(app, token, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_goes_through_every_matching_event_of_a_large_window_a_bounded_call_at_a_time() {
    let app = TestApp::spawn_with(|config| config.publish_rate = 1_000_000).await;
    let admin = app.admin("acme");
    // 11 000 clicks, then one conversion, before any webhook exists.
    for batch in 0..11 {
        let inputs: Vec<Value> = (0..1_000)
            .map(|n| json!({ "type": "click.created", "data": { "n": batch * 1_000 + n } }))
            .collect();
        app.gql
            .ok(&admin, PUBLISH_MANY, json!({ "inputs": inputs }))
            .await;
    }
    publish(&app, &admin, "conversion.created", json!({ "amount": 7 })).await;

    let conversions = Receiver::ok().await;
    let created = create_webhook(
        &app,
        &admin,
        fast_webhook(&conversions.url, &["conversion.*"], 3),
    )
    .await;
    let done = replay(
        &app,
        &admin,
        json!({ "w": created.webhook.id, "since": long_ago() }),
    )
    .await;
    assert_eq!(done["deliveryCount"], 1, "{done}");
    assert_eq!(done["eventCount"], 1, "{done}");
    assert_eq!(done["complete"], true, "{done}");
    let arrived = conversions.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(arrived[0].json()["type"], "conversion.created");

    // Every click: more than one call may queue; each says where to go on.
    let clicks = Receiver::ok().await;
    let created = create_webhook(&app, &admin, fast_webhook(&clicks.url, &["click.*"], 3)).await;
    let id = created.webhook.id;
    let first = replay(&app, &admin, json!({ "w": id, "since": long_ago() })).await;
    assert_eq!(first["deliveryCount"], 10_000, "{first}");
    assert_eq!(first["complete"], false, "{first}");
    let after = first["after"].as_str().expect("where to go on").to_owned();
    let second = replay(
        &app,
        &admin,
        json!({ "w": id, "since": long_ago(), "after": after }),
    )
    .await;
    assert_eq!(second["deliveryCount"], 1_000, "{second}");
    assert_eq!(second["complete"], true, "{second}");
    assert_eq!(second["after"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_resends_what_did_not_arrive_and_everything_only_on_request() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    // The first request fails for good (one attempt); the rest succeed.
    let receiver = Receiver::start(|n| Reply::Status(if n == 0 { 500 } else { 200 })).await;
    let created = create_webhook(&app, &admin, fast_webhook(&receiver.url, &["offer.*"], 1)).await;
    let id = created.webhook.id;
    let since = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();

    let failed = publish(&app, &admin, "offer.created", json!({ "n": "failed" })).await;
    settled(&app, &admin).await;
    publish(&app, &admin, "offer.created", json!({ "n": "succeeded" })).await;
    settled(&app, &admin).await;
    // Published while paused: never sent.
    app.gql
        .ok(&admin, PAUSE, json!({ "id": id, "status": "PAUSED" }))
        .await;
    let missed = publish(&app, &admin, "offer.created", json!({ "n": "missed" })).await;
    let until = chrono::Utc::now().to_rfc3339();
    // Time passes on purpose: `later` must be published after `until`.
    tokio::time::sleep(Duration::from_millis(20)).await;
    publish(&app, &admin, "offer.created", json!({ "n": "later" })).await;
    app.gql
        .ok(&admin, PAUSE, json!({ "id": id, "status": "ACTIVE" }))
        .await;
    assert_eq!(receiver.count(), 2);

    let done = replay(
        &app,
        &admin,
        json!({ "w": id, "since": since, "until": until }),
    )
    .await;
    assert_eq!(
        done["deliveryCount"], 2,
        "the failed one and the missed one: {done}"
    );
    assert_eq!(done["skippedCount"], 1, "the one that arrived: {done}");
    assert_eq!(done["eventCount"], 3, "`later` is past `until`: {done}");
    let arrivals = receiver.wait_for(4, Duration::from_secs(10)).await;
    let resent: Vec<Value> = arrivals[2..]
        .iter()
        .map(|r| r.json()["id"].clone())
        .collect();
    assert!(resent.contains(&json!(failed.event.id)), "{resent:?}");
    assert!(resent.contains(&json!(missed.event.id)), "{resent:?}");
    settled(&app, &admin).await;

    // Nothing left that did not arrive; everything again on request.
    let again = replay(
        &app,
        &admin,
        json!({ "w": id, "since": since, "until": until }),
    )
    .await;
    assert_eq!(again["deliveryCount"], 0, "{again}");
    let all = replay(
        &app,
        &admin,
        json!({ "w": id, "since": since, "until": until, "statuses": ["SUCCEEDED", "FAILED", "CANCELLED"] }),
    )
    .await;
    assert_eq!(all["deliveryCount"], 3, "{all}");

    for (variables, field) in [
        (
            json!({ "w": id, "since": since, "statuses": ["PENDING"] }),
            "statuses",
        ),
        (json!({ "w": id, "since": until, "until": since }), "until"),
    ] {
        let error = app.gql.err(Some(&admin), REPLAY, variables).await;
        assert_eq!(error.code(), "BAD_USER_INPUT", "{error}");
        assert_eq!(error.field(), Some(field), "{error}");
    }
}
