//! What one viewer can make the server hold: live subscriptions are capped
//! per socket, tenant and instance, and a query's payloads by a byte budget.
//! The server runs in this process, so the resident memory printed here is
//! the test's too: a figure to read, not an assertion.

use std::time::Duration;

use hookline::auth::Role;
use serde_json::{Value, json};

use crate::support::{
    TestApp,
    fixtures::publish,
    gql::GqlExt,
    ws::{Refusal, WsClient},
};

const WAIT: Duration = Duration::from_secs(10);
/// Differ only in an unused variable, as an attacker's would.
const EVENTS: &str =
    "subscription($filter: EventPublishedFilter) { eventsPublished(filter: $filter) { id type } }";

/// This process's resident memory in MiB, where the platform tells it.
fn rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

async fn socket(app: &TestApp, token: &str) -> WsClient {
    let mut client = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    client
        .init(json!({ "Authorization": format!("Bearer {token}") }))
        .await
        .expect("connection acknowledged");
    client
}

/// Subscribes `id` to events of `event_type`, made distinct by `n`.
async fn subscribe(client: &mut WsClient, id: &str, event_type: &str, n: usize) {
    let variables = json!({ "filter": { "type": event_type }, "n": n });
    client.subscribe(id, EVENTS, variables).await;
}

/// The `extensions.code` of the error that refused operation `id`.
async fn refusal_code(client: &mut WsClient, id: &str) -> String {
    let message = client.recv(WAIT).await.expect("a reply");
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["id"], id, "{message}");
    message["payload"][0].code().to_owned()
}

/// The type of the next event item.
async fn next_event_type(client: &mut WsClient) -> String {
    let payload = client.next_payload(WAIT).await;
    payload["data"]["eventsPublished"]["type"]
        .as_str()
        .unwrap_or_else(|| panic!("an event: {payload}"))
        .to_owned()
}

/// Runs a query on the socket and waits for its answer: every operation
/// sent before it has been taken or refused by then, and a refusal would
/// have come first.
async fn round_trip(client: &mut WsClient, id: &str) {
    client
        .send(json!({ "id": id, "type": "subscribe", "payload": { "query": "{ viewer { tenant } }" } }))
        .await;
    let answer = client.recv(WAIT).await.expect("an answer");
    assert_eq!(
        (&answer["type"], &answer["id"]),
        (&json!("next"), &json!(id)),
        "{answer}"
    );
    let complete = client.recv(WAIT).await.expect("complete");
    assert_eq!(complete["type"], "complete", "{complete}");
}

#[tokio::test]
async fn distinct_subscriptions_past_the_tenant_cap_are_refused_with_too_many_subscriptions() {
    // The defaults: 500 live subscriptions per tenant on one instance.
    let app = TestApp::spawn().await;
    let viewer = app.token("acme", Role::Viewer);
    let before = rss_mib();
    let mut sockets = Vec::new();
    for s in 0..5 {
        let mut client = socket(&app, &viewer).await;
        // 99 subscriptions and a query keep under 100 operations per socket.
        for i in 0..99 {
            subscribe(&mut client, &format!("{i}"), "offer.created", s * 100 + i).await;
        }
        round_trip(&mut client, "q").await;
        sockets.push(client);
    }
    let mut sixth = socket(&app, &viewer).await;
    for i in 0..5 {
        subscribe(&mut sixth, &format!("{i}"), "offer.created", 600 + i).await;
    }
    round_trip(&mut sixth, "q").await;
    if let (Some(before), Some(after)) = (before, rss_mib()) {
        println!("500 distinct subscriptions: RSS {before} MiB -> {after} MiB");
    }

    subscribe(&mut sixth, "501", "offer.created", 501).await;
    assert_eq!(
        refusal_code(&mut sixth, "501").await,
        "TOO_MANY_SUBSCRIPTIONS"
    );
    // Another tenant is not held back by this one.
    let other = app.token("globex", Role::Viewer);
    let mut theirs = socket(&app, &other).await;
    subscribe(&mut theirs, "1", "offer.created", 1).await;
    round_trip(&mut theirs, "q").await;

    // Ending one makes room for one.
    sockets[0]
        .send(json!({ "id": "0", "type": "complete" }))
        .await;
    round_trip(&mut sockets[0], "q2").await;
    subscribe(&mut sixth, "502", "offer.created", 502).await;
    round_trip(&mut sixth, "q2").await;
    subscribe(&mut sixth, "503", "offer.created", 503).await;
    assert_eq!(
        refusal_code(&mut sixth, "503").await,
        "TOO_MANY_SUBSCRIPTIONS"
    );

    // Those running still stream.
    publish(&app, &app.admin("acme"), "offer.created", json!({})).await;
    assert_eq!(next_event_type(&mut sixth).await, "offer.created");
}

#[tokio::test]
async fn subscriptions_past_the_instance_and_socket_caps_are_refused() {
    let app = TestApp::spawn_with(|config| config.max_subscriptions = 3).await;
    let acme = app.token("acme", Role::Viewer);
    let globex = app.token("globex", Role::Viewer);
    let mut first = socket(&app, &acme).await;
    for i in 0..2 {
        subscribe(&mut first, &format!("{i}"), "offer.created", i).await;
    }
    round_trip(&mut first, "q").await;
    let mut second = socket(&app, &globex).await;
    subscribe(&mut second, "a", "offer.created", 0).await;
    subscribe(&mut second, "b", "offer.created", 1).await;
    assert_eq!(
        refusal_code(&mut second, "b").await,
        "TOO_MANY_SUBSCRIPTIONS"
    );
    // Queries still run on a full instance.
    second
        .send(json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ viewer { tenant } }" } }))
        .await;
    let answer = second.next_payload(WAIT).await;
    assert_eq!(answer["data"]["viewer"]["tenant"], "globex", "{answer}");

    // One socket runs at most 100 operations, whatever the other caps.
    let app = TestApp::spawn().await;
    let mut client = socket(&app, &app.token("acme", Role::Viewer)).await;
    for i in 0..100 {
        subscribe(&mut client, &format!("{i}"), "offer.created", i).await;
    }
    subscribe(&mut client, "100", "offer.created", 100).await;
    assert_eq!(
        refusal_code(&mut client, "100").await,
        "TOO_MANY_SUBSCRIPTIONS"
    );
    match client.poll(Duration::from_millis(200)).await {
        None => {}
        Some(Err(Refusal::Closed(code, reason))) => panic!("closed {code} {reason}"),
        Some(other) => panic!("unexpected {other:?}"),
    }
}

/// Publishes `count` events whose `data` is about `bytes` long.
async fn publish_big_events(app: &TestApp, token: &str, count: usize, bytes: usize) {
    let blob = "x".repeat(bytes);
    // Ten at a time keeps each request far below the request size limit.
    for _ in 0..count / 10 {
        let inputs: Vec<Value> = (0..10)
            .map(|_| json!({ "type": "offer.created", "data": { "blob": blob } }))
            .collect();
        app.gql
            .ok(
                token,
                "mutation($inputs: [PublishEventInput!]!) { publishEvents(inputs: $inputs) { duplicate } }",
                json!({ "inputs": inputs }),
            )
            .await;
    }
}

#[tokio::test]
async fn an_aliased_heavy_read_is_refused_with_response_too_large_and_a_normal_read_works() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let viewer = app.token("acme", Role::Viewer);
    publish_big_events(&app, &admin, 100, 250_000).await;

    // One full page of the biggest events fits the default 32 MiB budget.
    let page = app
        .gql
        .ok(
            &viewer,
            "{ events(first: 100) { edges { node { id data } } } }",
            json!({}),
        )
        .await;
    let edges = page["events"]["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 100);
    assert_eq!(
        edges[0]["node"]["data"]["blob"].as_str().map(str::len),
        Some(250_000)
    );

    // Four such pages in one query do not: one error, no data.
    let before = rss_mib();
    let aliases: String = (0..4)
        .map(|i| format!("a{i}: events(first: 100) {{ nodes {{ data }} }} "))
        .collect();
    let body = app
        .gql
        .run(Some(&viewer), &format!("{{ {aliases} }}"), json!({}))
        .await;
    if let (Some(before), Some(after)) = (before, rss_mib()) {
        println!("4 aliased pages of 100 x 250 KB events: RSS {before} MiB -> {after} MiB");
    }
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{:.300}", body.to_string());
    assert_eq!(errors[0].code(), "RESPONSE_TOO_LARGE", "{}", errors[0]);
    assert!(body["data"].is_null(), "{:.300}", body.to_string());

    // The same with each event's body.
    let aliases: String = (0..4)
        .map(|i| format!("a{i}: events(first: 100) {{ nodes {{ body }} }} "))
        .collect();
    let error = app
        .gql
        .err(Some(&viewer), &format!("{{ {aliases} }}"), json!({}))
        .await;
    assert_eq!(error.code(), "RESPONSE_TOO_LARGE", "{error}");
    // Small reads are unaffected afterwards.
    let small = app
        .gql
        .ok(&viewer, "{ events(first: 5) { nodes { id } } }", json!({}))
        .await;
    assert_eq!(small["events"]["nodes"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn payload_a_read_held_is_given_back_to_the_instance_when_it_ends() {
    let app = TestApp::spawn_with(|config| {
        config.max_response_bytes = 1_000_000;
        config.max_response_bytes_in_flight = 1_000_000;
    })
    .await;
    let admin = app.admin("acme");
    let viewer = app.token("acme", Role::Viewer);
    publish_big_events(&app, &admin, 10, 250_000).await;
    for _ in 0..3 {
        // Two events fit, and what they held is given back each time.
        let two = app
            .gql
            .ok(
                &viewer,
                "{ events(first: 2) { nodes { data } } }",
                json!({}),
            )
            .await;
        assert_eq!(two["events"]["nodes"].as_array().map(Vec::len), Some(2));
    }
    let error = app
        .gql
        .err(
            Some(&viewer),
            "{ events(first: 10) { nodes { data } } }",
            json!({}),
        )
        .await;
    assert_eq!(error.code(), "RESPONSE_TOO_LARGE", "{error}");
}
