//! hookline's own events: a webhook subscribed to `hookline.*` is told when
//! an endpoint is disabled (once per disable), starts failing, recovers, and
//! when a delivery runs out of attempts; `*` does not select them, clients
//! cannot publish them, and a failing operations endpoint never feeds
//! events into itself.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    TestApp, eventually,
    fixtures::*,
    receiver::{Receiver, Reply},
    ws::WsClient,
};

/// The `type`s of what `receiver` got, in arrival order.
fn types(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn bodies_of(receiver: &Receiver, event_type: &str) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .map(|r| r.json())
        .filter(|body| body["type"] == event_type)
        .collect()
}

/// A webhook for `hookline.*` to `url`, which gets one attempt per event.
fn ops_webhook(url: &str, max_attempts: u32) -> Value {
    fast_webhook(url, &["hookline.*"], max_attempts)
}

#[tokio::test]
async fn an_operations_webhook_is_told_once_per_disable_and_a_catch_all_is_not() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let ops = Receiver::ok().await;
    let everything = Receiver::ok().await;
    let gone = Receiver::start(|_| Reply::Status(410)).await;
    create_webhook(&app, &admin, ops_webhook(&ops.url, 3)).await;
    create_webhook(&app, &admin, fast_webhook(&everything.url, &["*"], 3)).await;
    let dead = create_webhook(&app, &admin, fast_webhook(&gone.url, &["offer.created"], 3)).await;
    for n in 0..3 {
        publish(&app, &admin, "offer.created", json!({ "n": n })).await;
    }
    ops.wait_for(1, WAIT).await;
    everything.wait_for(3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(700)).await;

    assert_eq!(types(&ops), ["hookline.endpoint.disabled"], "exactly once");
    let notice = &bodies_of(&ops, "hookline.endpoint.disabled")[0]["data"];
    assert_eq!(notice["webhookId"], dead.webhook.id);
    assert_eq!(notice["endpointId"], dead.webhook.endpoints[0].id);
    assert_eq!(notice["url"], gone.url);
    assert!(
        notice["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("410"),
        "{notice}"
    );
    assert!(
        types(&everything).iter().all(|t| t == "offer.created"),
        "`*` does not select hookline's own events: {:?}",
        types(&everything)
    );

    // An admin's disable is announced too, with who did it.
    let live = create_webhook(
        &app,
        &admin,
        fast_webhook(&everything.url, &["offer.updated"], 3),
    )
    .await;
    app.gql
        .ok(
            &admin,
            "mutation($id: ID!) { disableEndpoint(id: $id, reason: \"maintenance\") { id } }",
            json!({ "id": live.webhook.endpoints[0].id }),
        )
        .await;
    ops.wait_for(2, WAIT).await;
    let manual = &bodies_of(&ops, "hookline.endpoint.disabled")[1]["data"];
    assert_eq!(manual["reason"], "maintenance");
    assert_eq!(manual["endpointId"], live.webhook.endpoints[0].id);
}

#[tokio::test]
async fn failing_recovered_and_exhausted_are_announced() {
    let app = TestApp::spawn_with(|config| config.failing_after = 2).await;
    let admin = app.admin("acme");
    let ops = Receiver::ok().await;
    // Fails three times, then answers.
    let flaky = Receiver::start(|n| Reply::Status(if n < 3 { 503 } else { 200 })).await;
    let broken = Receiver::start(|_| Reply::Status(500)).await;
    create_webhook(&app, &admin, ops_webhook(&ops.url, 3)).await;
    let mut retrying = fast_webhook(&flaky.url, &["offer.created"], 6);
    retrying["retryPolicy"] =
        json!({ "maxAttempts": 6, "initialIntervalMs": 50, "maxIntervalMs": 50 });
    let flaky_hook = create_webhook(&app, &admin, retrying).await;
    publish(&app, &admin, "offer.created", json!({})).await;
    flaky.wait_for(4, WAIT).await;
    eventually("failing, then recovered", WAIT, || async {
        (types(&ops) == ["hookline.endpoint.failing", "hookline.endpoint.recovered"]).then_some(())
    })
    .await;
    let failing = &bodies_of(&ops, "hookline.endpoint.failing")[0]["data"];
    assert_eq!(failing["endpointId"], flaky_hook.webhook.endpoints[0].id);
    assert_eq!(failing["consecutiveFailures"], 2);
    assert!(failing["failingSince"].is_string(), "{failing}");
    let recovered = &bodies_of(&ops, "hookline.endpoint.recovered")[0]["data"];
    assert_eq!(recovered["failedAttempts"], 3);

    let mut once = fast_webhook(&broken.url, &["offer.updated"], 1);
    once["name"] = json!("one attempt");
    create_webhook(&app, &admin, once).await;
    let published = publish(&app, &admin, "offer.updated", json!({})).await;
    let exhausted = eventually("a delivery.exhausted notice", WAIT, || async {
        bodies_of(&ops, "hookline.delivery.exhausted").pop()
    })
    .await;
    let data = &exhausted["data"];
    assert_eq!(data["eventId"], published.event.id);
    assert_eq!(data["eventType"], "offer.updated");
    assert_eq!(data["attempts"], 1);
    assert_eq!(data["lastResponseStatus"], 500);
    assert_eq!(data["errorKind"], "NON_2XX");
}

#[tokio::test]
async fn a_failing_operations_endpoint_never_feeds_events_into_itself() {
    let app = TestApp::spawn_with(|config| config.failing_after = 1).await;
    let admin = app.admin("acme");
    // The operations endpoint itself is down, and gives up after 2 attempts.
    let ops = Receiver::start(|_| Reply::Status(500)).await;
    let broken = Receiver::start(|_| Reply::Status(500)).await;
    create_webhook(&app, &admin, ops_webhook(&ops.url, 2)).await;
    create_webhook(
        &app,
        &admin,
        fast_webhook(&broken.url, &["offer.created"], 1),
    )
    .await;
    publish(&app, &admin, "offer.created", json!({})).await;
    // One failure raises `failing` (after 1) and `exhausted` (1 attempt):
    // two events, two attempts each at the operations endpoint, and their
    // own failures raise nothing more.
    ops.wait_for(4, WAIT).await;
    wait_settled(&app, &admin, WAIT).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut got = types(&ops);
    got.sort();
    assert_eq!(
        got,
        [
            "hookline.delivery.exhausted",
            "hookline.delivery.exhausted",
            "hookline.endpoint.failing",
            "hookline.endpoint.failing",
        ]
    );
}

#[tokio::test]
async fn only_hookline_publishes_its_own_types() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let err = app
        .gql
        .err(
            Some(&admin),
            PUBLISH,
            json!({ "input": { "type": "hookline.endpoint.disabled", "data": {} } }),
        )
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT", "{err:?}");
    let err = app
        .gql
        .err(
            Some(&admin),
            "mutation { createEventType(input: { name: \"hookline.custom\", description: \"x\" }) { name } }",
            json!({}),
        )
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT", "{err:?}");
    // They are in the catalog, so a webhook can name them.
    let ops = create_webhook(
        &app,
        &admin,
        fast_webhook("http://127.0.0.1:9/", &["hookline.endpoint.disabled"], 1),
    )
    .await;
    assert_eq!(ops.webhook.event_types, ["hookline.endpoint.disabled"]);
}

#[tokio::test]
async fn an_admins_disable_is_told_at_once_to_subscribers_and_to_the_operations_webhook() {
    // Workers poll once a minute here: only being told can make it quick.
    let app = TestApp::spawn_with(|config| config.poll_interval = Duration::from_secs(60)).await;
    let admin = app.admin("acme");
    let ops = Receiver::ok().await;
    let receiver = Receiver::ok().await;
    create_webhook(&app, &admin, ops_webhook(&ops.url, 3)).await;
    let webhook = create_webhook(&app, &admin, fast_webhook(&receiver.url, &["offer.*"], 3)).await;
    let mut client = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    client
        .init(json!({ "Authorization": format!("Bearer {admin}") }))
        .await
        .expect("connection acknowledged");
    client
        .subscribe(
            "1",
            "subscription { eventsPublished(filter: { type: \"hookline.*\" }) { type data } }",
            json!({}),
        )
        .await;
    client.barrier().await;

    app.gql
        .ok(
            &admin,
            "mutation($id: ID!) { disableEndpoint(id: $id) { id } }",
            json!({ "id": webhook.webhook.endpoints[0].id }),
        )
        .await;
    let message = client
        .recv(Duration::from_secs(5))
        .await
        .expect("a message");
    let event = &message["payload"]["data"]["eventsPublished"];
    assert_eq!(event["type"], "hookline.endpoint.disabled", "{message}");
    assert_eq!(event["data"]["endpointId"], webhook.webhook.endpoints[0].id);
    let arrived = ops.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(arrived[0].json()["type"], "hookline.endpoint.disabled");
}
