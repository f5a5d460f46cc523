//! Live subscriptions over a real WebSocket client, both protocols.

use std::time::Duration;

use hookline::auth::{JwtKeys, Role};
use serde_json::{Value, json};

use crate::support::{
    TestApp,
    fixtures::*,
    jwt::expiring_token,
    receiver::{Receiver, Reply},
    types::{Attempt, Delivery, parse},
    ws::{Refusal, WsClient},
};

const ATTEMPTS: &str = "subscription($filter: DeliveryAttemptFilter) { deliveryAttempts(filter: $filter) {
    id deliveryId eventId eventType webhookId endpointUrl attemptNumber outcome responseStatus durationMs
    errorKind errorMessage startedAt nextAttemptAt delivery { id status } } }";
const WAIT: Duration = Duration::from_secs(10);

/// A socket with subscription "1" running and listening for news.
async fn subscriber(
    app: &TestApp,
    protocols: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> WsClient {
    let mut client = connected(app, protocols, token).await;
    client.subscribe_listening("1", query, variables).await;
    client
}

/// As [`subscriber`], for a subscription identical to one already open on
/// the server (same query, variables, tenant and role): it joins that
/// execution as soon as the server has read the message.
async fn sharing_subscriber(
    app: &TestApp,
    protocols: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> WsClient {
    let mut client = connected(app, protocols, token).await;
    client.subscribe("1", query, variables).await;
    client.barrier().await;
    client
}

async fn connected(app: &TestApp, protocols: &str, token: &str) -> WsClient {
    let mut client = WsClient::connect(app.addr, protocols, None).await;
    client
        .init(json!({ "Authorization": format!("Bearer {token}") }))
        .await
        .expect("connection acknowledged");
    client
}

#[tokio::test]
async fn attempts_stream_in_order_over_both_protocols() {
    for (offered, expected) in [
        ("graphql-transport-ws", "graphql-transport-ws"),
        ("graphql-ws", "graphql-ws"),
        // The client's preference wins, whatever the order.
        ("graphql-ws, graphql-transport-ws", "graphql-ws"),
        ("graphql-transport-ws, graphql-ws", "graphql-transport-ws"),
    ] {
        let app = TestApp::spawn().await;
        let admin = app.admin("acme");
        let viewer = app.token("acme", Role::Viewer);
        let receiver = Receiver::start(|n| {
            if n < 2 {
                Reply::Status(500)
            } else {
                Reply::Status(200)
            }
        })
        .await;
        create_webhook(&app, &admin, fast_webhook(&receiver.url, &["offer.*"], 5)).await;
        let mut client = subscriber(&app, offered, &viewer, ATTEMPTS, json!({})).await;
        assert_eq!(client.protocol, expected, "offered {offered}");

        let published = publish(&app, &admin, "offer.created", json!({ "offerId": 1 })).await;
        let mut seen: Vec<(Attempt, Delivery)> = Vec::new();
        for _ in 0..3 {
            let payload = client.next_payload(WAIT).await;
            let attempt = &payload["data"]["deliveryAttempts"];
            seen.push((parse(attempt), parse(&attempt["delivery"])));
        }
        let summary: Vec<(i64, &str)> = seen
            .iter()
            .map(|(a, _)| (a.attempt_number, a.outcome.as_str()))
            .collect();
        assert_eq!(
            summary,
            [(1, "FAILED"), (2, "FAILED"), (3, "SUCCEEDED")],
            "{offered}"
        );
        let first = &seen[0].0;
        assert_eq!(first.event_id, published.event.id);
        assert_eq!(first.event_type, "offer.created");
        assert_eq!(first.endpoint_url, receiver.url);
        assert_eq!(first.response_status, Some(500));
        assert_eq!(first.error_kind.as_deref(), Some("NON_2XX"));
        assert!(first.next_attempt_at.is_some());
        assert_eq!(seen[2].1.status, "SUCCEEDED");
        client.close().await;
    }
}

#[tokio::test]
async fn filters_hold() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let failing = Receiver::start(|_| Reply::Status(500)).await;
    let fine = Receiver::ok().await;
    let watched = create_webhook(&app, &admin, fast_webhook(&failing.url, &["*"], 2)).await;
    create_webhook(&app, &admin, fast_webhook(&fine.url, &["*"], 2)).await;
    let watched_id = watched.webhook.id.as_str();
    let filter = json!({ "filter": { "webhookId": watched_id, "outcome": "FAILED", "eventType": "conversion.*" } });
    let mut client = subscriber(&app, "graphql-transport-ws", &admin, ATTEMPTS, filter).await;

    publish(&app, &admin, "offer.created", json!({})).await;
    publish(&app, &admin, "conversion.created", json!({})).await;
    for n in 1..=2 {
        let attempt: Attempt = parse(&client.next_payload(WAIT).await["data"]["deliveryAttempts"]);
        assert_eq!(attempt.webhook_id, watched_id);
        assert_eq!(attempt.event_type, "conversion.created");
        assert_eq!(attempt.outcome, "FAILED");
        assert_eq!(attempt.attempt_number, n);
    }
    client.expect_silence(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn another_tenant_sees_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    create_webhook(&app, &admin, fast_webhook(&receiver.url, &["*"], 2)).await;
    let mut own = subscriber(&app, "graphql-transport-ws", &admin, ATTEMPTS, json!({})).await;
    let mut intruder = subscriber(
        &app,
        "graphql-transport-ws",
        &app.admin("globex"),
        ATTEMPTS,
        json!({}),
    )
    .await;
    let mut intruder_events = subscriber(
        &app,
        "graphql-ws",
        &app.admin("globex"),
        "subscription { eventsPublished { id } }",
        json!({}),
    )
    .await;
    publish(&app, &admin, "offer.created", json!({})).await;
    own.next_payload(WAIT).await;
    intruder.expect_silence(Duration::from_millis(300)).await;
    intruder_events
        .expect_silence(Duration::from_millis(100))
        .await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_the_protocols_auth_error() {
    let app =
        TestApp::spawn_with(|config| config.ws_init_timeout = Duration::from_millis(300)).await;
    let forged = JwtKeys::new(b"someone-elses-secret-someone-else")
        .issue("acme", "mallory", Role::Admin, Duration::from_secs(60))
        .expect("token");
    for payload in [
        json!({ "Authorization": format!("Bearer {forged}") }),
        json!({}),
    ] {
        let mut modern = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
        match modern.init(payload.clone()).await {
            Err(Refusal::Closed(4403, _)) => {}
            other => panic!("expected close 4403 for {payload}, got {other:?}"),
        }
        let mut legacy = WsClient::connect(app.addr, "graphql-ws", None).await;
        match legacy.init(payload.clone()).await {
            Err(Refusal::ConnectionError(error)) => {
                assert!(
                    error["message"].as_str().unwrap_or_default().len() > 3,
                    "{error}"
                )
            }
            other => panic!("expected connection_error for {payload}, got {other:?}"),
        }
    }
    // No connection_init at all: closed with 4408.
    let mut silent = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    match silent.recv(Duration::from_secs(5)).await {
        Err(Refusal::Closed(4408, _)) => {}
        other => panic!("expected close 4408, got {other:?}"),
    }
    // A token in the upgrade request's header works without one in the payload.
    let mut via_header =
        WsClient::connect(app.addr, "graphql-transport-ws", Some(&app.admin("acme"))).await;
    via_header
        .init(json!({}))
        .await
        .expect("header token accepted");
}

#[tokio::test]
async fn status_changes_and_published_events_stream_too() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::start(|n| {
        if n == 0 {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    create_webhook(&app, &admin, fast_webhook(&receiver.url, &["*"], 3)).await;
    let mut statuses = subscriber(
        &app,
        "graphql-transport-ws",
        &admin,
        "subscription { deliveryStatusChanged { id status attemptCount } }",
        json!({}),
    )
    .await;
    let mut events = subscriber(
        &app,
        "graphql-transport-ws",
        &admin,
        "subscription { eventsPublished(filter: {type: \"offer.*\"}) { id type data } }",
        json!({}),
    )
    .await;
    publish(&app, &admin, "affiliate.created", json!({ "skip": true })).await;
    let published = publish(&app, &admin, "offer.created", json!({ "offerId": 5 })).await;
    let event = events.next_payload(WAIT).await["data"]["eventsPublished"].clone();
    assert_eq!(
        event["id"], published.event.id,
        "the affiliate event was filtered out"
    );
    assert_eq!(event["data"], json!({ "offerId": 5 }));

    let mut seen: Vec<(String, String)> = Vec::new();
    while seen.iter().filter(|(_, s)| s == "SUCCEEDED").count() < 2 {
        let change = statuses.next_payload(WAIT).await["data"]["deliveryStatusChanged"].clone();
        seen.push((
            change["id"].as_str().expect("id").to_owned(),
            change["status"].as_str().expect("s").to_owned(),
        ));
    }
    let statuses_only: Vec<&str> = seen.iter().map(|(_, s)| s.as_str()).collect();
    assert!(statuses_only.contains(&"RETRYING"), "{statuses_only:?}");
    assert_eq!(
        statuses_only.iter().filter(|s| **s == "SUCCEEDED").count(),
        2,
        "{statuses_only:?}"
    );
}

#[tokio::test]
async fn a_slow_subscriber_is_told_what_it_missed_and_never_holds_up_delivery() {
    let app = TestApp::spawn_with(|config| config.subscriber_buffer = 16).await;
    let admin = app.admin("acme");
    // 4 KiB response bodies make each streamed item big, so the socket's
    // buffers fill quickly and the subscription has to fall behind.
    let receiver = Receiver::start(|_| Reply::Body(4096)).await;
    create_webhook(&app, &admin, fast_webhook(&receiver.url, &["*"], 2)).await;
    let mut stalled = subscriber(&app, "graphql-transport-ws", &admin, ATTEMPTS, json!({})).await;

    let total = 2_000;
    for chunk in 0..(total / 500) {
        let inputs: Vec<Value> = (0..500)
            .map(|i| json!({ "type": "click.created", "data": { "n": chunk * 500 + i } }))
            .collect();
        app.gql
            .ok(&admin, "mutation($inputs: [PublishEventInput!]!) { publishEvents(inputs: $inputs) { deliveryCount } }", json!({ "inputs": inputs }))
            .await;
    }
    // The worker delivers everything while the subscriber reads nothing.
    receiver.wait_for(total, Duration::from_secs(60)).await;
    wait_stats(
        &app,
        &admin,
        "every delivery recorded",
        Duration::from_secs(30),
        |s| s.succeeded == total as u64,
    )
    .await;

    // Now it reads: some items, then a LAGGED notice with the count it missed.
    let mut dropped = 0;
    for _ in 0..total {
        let payload = stalled.next_payload(WAIT).await;
        if let Some(error) = payload["errors"].get(0) {
            assert_eq!(error["extensions"]["code"], "LAGGED", "{error}");
            dropped = error["extensions"]["dropped"]
                .as_u64()
                .expect("dropped count");
            break;
        }
    }
    assert!(
        dropped > 0,
        "the stalled subscriber was told it missed items"
    );
    // And it is still subscribed afterwards.
    publish(&app, &admin, "offer.created", json!({})).await;
    loop {
        let payload = stalled.next_payload(WAIT).await;
        if payload["data"]["deliveryAttempts"]["eventType"] == "offer.created" {
            break;
        }
    }
}

#[tokio::test]
async fn identical_subscriptions_share_one_execution_but_expire_on_their_own() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    create_webhook(&app, &admin, fast_webhook(&receiver.url, &["*"], 3)).await;
    let (short, _) = expiring_token("acme", "brief", Role::Viewer, Duration::from_secs(2));
    let query = "subscription { deliveryAttempts { eventId outcome } }";
    let mut lasting = subscriber(&app, "graphql-transport-ws", &admin, query, json!({})).await;
    let mut brief = subscriber(&app, "graphql-ws", &short, query, json!({})).await;

    let first = publish(&app, &admin, "offer.created", json!({})).await;
    for client in [&mut lasting, &mut brief] {
        let item = client.next_payload(WAIT).await;
        assert_eq!(item["data"]["deliveryAttempts"]["eventId"], first.event.id);
    }
    // The short token runs out: that subscriber is told and its stream ends...
    let ended = brief.next_payload(Duration::from_secs(5)).await;
    assert_eq!(
        ended["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{ended}"
    );
    let complete = brief.recv(WAIT).await.expect("complete");
    assert_eq!(complete["type"], "complete");
    // ...while the other, sharing the same execution, goes on.
    let second = publish(&app, &admin, "offer.created", json!({})).await;
    let item = lasting.next_payload(WAIT).await;
    assert_eq!(item["data"]["deliveryAttempts"]["eventId"], second.event.id);
}

#[tokio::test]
async fn the_protocols_rules_are_enforced() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let auth = json!({ "Authorization": format!("Bearer {admin}") });
    let query = "subscription { eventsPublished { id } }";

    // Subscribing before connection_init: 4401.
    let mut early = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    early.subscribe("1", query, json!({})).await;
    expect_close(&mut early, 4401).await;

    // Not a protocol message: 4400.
    let mut garbled = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    garbled.send(json!({ "type": "launch_missiles" })).await;
    expect_close(&mut garbled, 4400).await;

    // A second connection_init: 4429.
    let mut twice = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    twice.init(auth.clone()).await.expect("ack");
    twice
        .send(json!({ "type": "connection_init", "payload": auth }))
        .await;
    expect_close(&mut twice, 4429).await;

    // A query over the socket answers once and completes.
    let mut socket = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    socket.init(auth.clone()).await.expect("ack");
    socket
        .send(json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ viewer { tenant } }" } }))
        .await;
    let answer = socket.recv(WAIT).await.expect("next");
    assert_eq!(answer["type"], "next");
    assert_eq!(answer["id"], "q");
    assert_eq!(answer["payload"]["data"]["viewer"]["tenant"], "acme");
    let done = socket.recv(WAIT).await.expect("complete");
    assert_eq!(
        (done["type"].as_str(), done["id"].as_str()),
        (Some("complete"), Some("q"))
    );
    // The id is free again once its operation completed; using it twice: 4409.
    socket.subscribe("q", query, json!({})).await;
    socket.subscribe("q", query, json!({})).await;
    expect_close(&mut socket, 4409).await;

    // A client `complete` stops the stream: nothing more arrives for it.
    // (The socket above ran the same subscription, whose execution lives on
    // until it next has something to send.)
    let mut stopper =
        sharing_subscriber(&app, "graphql-transport-ws", &admin, query, json!({})).await;
    stopper.send(json!({ "id": "1", "type": "complete" })).await;
    stopper.barrier().await;
    publish(&app, &admin, "offer.created", json!({})).await;
    stopper.expect_silence(Duration::from_millis(500)).await;
}

/// Waits for the server to close `client` with `code`.
async fn expect_close(client: &mut WsClient, code: u16) {
    match client.recv(WAIT).await {
        Err(Refusal::Closed(got, _)) if got == code => {}
        other => panic!("expected close {code}, got {other:?}"),
    }
}

/// A client that closes the socket gets the server's close frame back at
/// once, on both protocols, with a subscription running: client libraries
/// (Python's gql, for one) otherwise wait out their close timeout.
#[tokio::test]
async fn a_client_closing_the_socket_gets_a_close_frame_back() {
    let app = TestApp::spawn().await;
    let token = app.token("acme", Role::Viewer);
    for protocols in ["graphql-transport-ws", "graphql-ws"] {
        // The second round's subscription is the first one's again, whose
        // execution may still be there to share.
        let mut client = sharing_subscriber(
            &app,
            protocols,
            &token,
            "subscription { deliveryAttempts { id } }",
            json!({}),
        )
        .await;
        client.expect_silence(Duration::from_millis(100)).await;
        assert_eq!(
            client.close_and_await_reply(Duration::from_secs(2)).await,
            Some(1000),
            "{protocols}: the close is answered with a close frame"
        );
    }
    app.stop().await;
}

/// Each subscription item has the byte budget of a query: `data` under
/// hundreds of aliases would build one item many times the response limit
/// (an event of 20 KB, 300 aliases: 6 MB). Refused as that one error; the
/// next item starts afresh, and another subscriber of the same event gets it
/// whole.
#[tokio::test]
async fn a_subscription_item_over_the_response_limit_is_that_one_error() {
    let app = TestApp::spawn_with(|config| config.max_response_bytes = 1024 * 1024).await;
    let admin = app.admin("acme");
    let aliases: String = (0..300).map(|n| format!("d{n}: data ")).collect();
    let query = format!("subscription {{ eventsPublished {{ id {aliases} }} }}");
    let mut greedy = subscriber(&app, "graphql-transport-ws", &admin, &query, json!({})).await;
    let query = "subscription { eventsPublished { id data } }";
    let mut plain = subscriber(&app, "graphql-transport-ws", &admin, query, json!({})).await;

    let text = "x".repeat(20_000);
    publish(&app, &admin, "offer.created", json!({ "text": text })).await;
    let refused = greedy.next_payload(WAIT).await;
    let shown = refused.to_string();
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        "RESPONSE_TOO_LARGE",
        "{}",
        &shown[..shown.len().min(300)]
    );
    assert!(refused["data"].is_null(), "nothing of the item is sent");
    let item = plain.next_payload(WAIT).await;
    assert_eq!(
        item["data"]["eventsPublished"]["data"]["text"],
        text.as_str()
    );

    publish(&app, &admin, "offer.created", json!({ "small": 1 })).await;
    let next = greedy.next_payload(WAIT).await;
    assert_eq!(
        next["data"]["eventsPublished"]["d299"],
        json!({ "small": 1 })
    );
}
