//! A WebSocket lives no longer than the token it was opened with: at `exp`
//! its operations end with `UNAUTHENTICATED`, the socket closes with 4403, and
//! nothing sent over it afterwards runs.

use std::time::Duration;

use hookline::auth::Role;
use serde_json::{Value, json};

use crate::support::{TestApp, jwt::expiring_token, ws::WsClient};

/// A token for `acme` that runs out in about `seconds`, and its `exp` in ms.
fn short_token(role: Role, seconds: u64) -> (String, i64) {
    expiring_token("acme", "brief", role, Duration::from_secs(seconds))
}

async fn sleep_until_ms(epoch_ms: i64) {
    let left = epoch_ms - chrono::Utc::now().timestamp_millis();
    if left > 0 {
        tokio::time::sleep(Duration::from_millis(left.unsigned_abs())).await;
    }
}

fn operation(protocol: &str, id: &str, query: &str) -> Value {
    let kind = if protocol == "graphql-ws" {
        "start"
    } else {
        "subscribe"
    };
    json!({ "id": id, "type": kind, "payload": { "query": query } })
}

#[tokio::test]
async fn an_expired_token_closes_the_socket_and_nothing_runs_after_exp() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        let (token, exp_ms) = short_token(Role::Admin, 3);
        let mut client = WsClient::connect(app.addr, protocol, None).await;
        client
            .init(json!({ "Authorization": format!("Bearer {token}") }))
            .await
            .expect("acknowledged");
        client
            .send(operation(
                protocol,
                "live",
                "subscription { eventsPublished { id } }",
            ))
            .await;
        // Before `exp` the socket answers queries as usual.
        client
            .send(operation(protocol, "before", "{ viewer { tenant } }"))
            .await;
        let answer = client.recv(Duration::from_secs(5)).await.expect("answer");
        assert_eq!(answer["id"], "before", "{protocol}: {answer}");
        assert_eq!(answer["payload"]["data"]["viewer"]["tenant"], "acme");

        // Just after `exp`, a mutation is sent over the same socket.
        sleep_until_ms(exp_ms + 300).await;
        let publish = "mutation { publishEvent(input: {type: \"offer.created\", data: {}}) { event { id } } }";
        client.try_send(operation(protocol, "late", publish)).await;

        let (messages, code, reason) = client.until_closed(Duration::from_secs(5)).await;
        let closed_at = chrono::Utc::now().timestamp_millis();
        assert_eq!(code, 4403, "{protocol}: closed with {code} {reason}");
        assert!(
            closed_at - exp_ms < 2_000,
            "{protocol}: closed {} ms after exp",
            closed_at - exp_ms
        );
        let live: Vec<&Value> = messages
            .iter()
            .filter(|m| m["id"] == "live" && m["type"] != "complete")
            .collect();
        assert_eq!(live.len(), 1, "{protocol}: {messages:?}");
        assert_eq!(
            live[0]["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
            "{protocol}: {messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m["id"] == "live" && m["type"] == "complete"),
            "{protocol}: the subscription is completed: {messages:?}"
        );
        assert!(
            messages.iter().all(|m| m["payload"]["data"].is_null()),
            "{protocol}: nothing ran after exp: {messages:?}"
        );
    }
    // And the mutation sent after `exp` stored nothing.
    let events = app
        .gql
        .ok(
            &admin,
            "{ events(first: 10) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(events["events"]["edges"], json!([]), "{events}");
}

#[tokio::test]
async fn a_socket_with_a_fresh_token_outlives_one_that_expired() {
    let app = TestApp::spawn().await;
    let (short, _) = short_token(Role::Viewer, 2);
    let mut brief = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    brief
        .init(json!({ "Authorization": format!("Bearer {short}") }))
        .await
        .expect("acknowledged");
    let mut lasting = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    lasting
        .init(json!({ "Authorization": format!("Bearer {}", app.admin("acme")) }))
        .await
        .expect("acknowledged");
    let (_, code, _) = brief.until_closed(Duration::from_secs(5)).await;
    assert_eq!(code, 4403);
    lasting
        .send(operation(
            "graphql-transport-ws",
            "q",
            "{ viewer { tenant } }",
        ))
        .await;
    let answer = lasting.recv(Duration::from_secs(5)).await.expect("answer");
    assert_eq!(answer["payload"]["data"]["viewer"]["tenant"], "acme");
}

/// A client that stops reading fills the connection's buffers, and the
/// server's next write waits for it. It waited for good: the socket kept
/// its subscription (and its slot) past its token's expiry and past
/// shutdown. Now a write that does not finish within
/// `HOOKLINE_WS_WRITE_TIMEOUT` drops the socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_whose_client_stopped_reading_is_dropped() {
    let app = TestApp::spawn_with(|config| {
        config.ws_write_timeout = Duration::from_secs(1);
    })
    .await;
    let admin = app.admin("acme");
    let mut client = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    client
        .init(json!({ "Authorization": format!("Bearer {admin}") }))
        .await
        .expect("acknowledged");
    let query = "subscription { eventsPublished { id data } }";
    client.subscribe_listening("live", query, json!({})).await;
    // About 16 MB of items, more than the loopback connection's buffers
    // hold; the client reads none of them.
    let data = json!({ "blob": "x".repeat(200 * 1024) });
    for _ in 0..80 {
        crate::support::fixtures::publish(&app, &admin, "offer.created", data.clone()).await;
    }
    crate::support::eventually(
        "the server to drop the socket",
        Duration::from_secs(20),
        || async {
            let live = app.metric("hookline_subscribers").await.unwrap_or(0.0);
            (live == 0.0).then_some(())
        },
    )
    .await;
    drop(client);
}
