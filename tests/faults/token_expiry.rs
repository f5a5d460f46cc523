//! (t) Tokens expiring on busy sockets: many sockets with live subscriptions
//! and a steady stream of queries when their token runs out. Every socket
//! must close with 4403 soon after `exp`, and no query sent at or after
//! `exp` may be answered with data.

use std::{collections::HashSet, sync::Arc, time::Duration};

use hookline::auth::Role;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::{
    Tally, publish_batch,
    support::{
        app::fresh_database,
        fixtures::*,
        gql::Gql,
        jwt::{admin_token, expiring_token},
        process::ServerProcess,
        receiver::Receiver,
        ws::{Refusal, WsClient},
    },
    webhook_ids,
};

const SOCKETS: usize = 24;
/// How long after `exp` a socket may stay open (generous: CI machines are slow).
const CLOSE_BOUND_MS: i64 = 2_000;

/// What one socket saw around its token's expiry.
#[derive(Debug, Default)]
struct SocketRun {
    close_code: Option<u16>,
    /// Close time minus `exp`.
    close_delay_ms: i64,
    queries_answered: usize,
    /// Queries sent at or after `exp` that came back with data: must be 0.
    answered_after_exp: usize,
    items_before_exp: usize,
    unauthenticated: usize,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn start_message(protocol: &str, id: &str, query: &str) -> Value {
    let kind = if protocol == "graphql-ws" {
        "start"
    } else {
        "subscribe"
    };
    json!({ "id": id, "type": kind, "payload": { "query": query } })
}

/// One socket: two subscriptions, then a query every 40 ms until closed.
async fn busy_socket(addr: std::net::SocketAddr, protocol: &'static str) -> SocketRun {
    let (token, exp_ms) = expiring_token("acme", "brief", Role::Viewer, Duration::from_secs(3));
    let mut client = WsClient::connect(addr, protocol, None).await;
    client
        .init(json!({ "Authorization": format!("Bearer {token}") }))
        .await
        .expect("acknowledged");
    for (id, query) in [
        ("events", "subscription { eventsPublished { id } }"),
        (
            "attempts",
            "subscription { deliveryAttempts { id outcome } }",
        ),
    ] {
        client.send(start_message(protocol, id, query)).await;
    }
    let mut run = SocketRun::default();
    let mut sent_at = std::collections::HashMap::new();
    let mut next_query = 0;
    let mut last_sent = 0;
    loop {
        let now = now_ms();
        if now - last_sent >= 40 {
            let id = format!("q{next_query}");
            next_query += 1;
            last_sent = now;
            sent_at.insert(id.clone(), now);
            // The server may already have closed the socket.
            client
                .try_send(start_message(protocol, &id, "{ viewer { tenant } }"))
                .await;
        }
        match client.poll(Duration::from_millis(20)).await {
            None => {}
            Some(Ok(message)) => {
                let id = message["id"].as_str().unwrap_or_default();
                let has_data = !message["payload"]["data"].is_null();
                if let Some(sent) = sent_at.get(id)
                    && has_data
                {
                    run.queries_answered += 1;
                    if *sent >= exp_ms {
                        run.answered_after_exp += 1;
                    }
                } else if has_data && now_ms() < exp_ms {
                    run.items_before_exp += 1;
                }
                if message["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" {
                    run.unauthenticated += 1;
                }
            }
            Some(Err(Refusal::Closed(code, _))) => {
                run.close_code = Some(code);
                run.close_delay_ms = now_ms() - exp_ms;
                return run;
            }
            Some(Err(other)) => panic!("unexpected {other:?}"),
        }
        if now_ms() > exp_ms + 10_000 {
            run.close_delay_ms = now_ms() - exp_ms;
            return run;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expiring_on_busy_sockets() {
    let (url, _dir) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let admin = admin_token("acme");
    let server = ServerProcess::start(&url, logs.path(), &[]);
    let gql = Gql::new(server.graphql_url());
    let receiver = Receiver::ok().await;
    create_webhook(&gql, &admin, fast_webhook(&receiver.url, &["*"], 5)).await;

    // Publishing goes on throughout, so the subscriptions have work in flight.
    let published: Arc<Mutex<HashSet<String>>> = Arc::default();
    let publisher = {
        let (gql, admin, published) = (gql.clone(), admin.clone(), published.clone());
        tokio::spawn(async move {
            for round in 0..60 {
                let ids = publish_batch(&gql, &admin, round * 5, 5)
                    .await
                    .expect("published");
                published.lock().await.extend(ids);
                // Paced, so that publishing spans the tokens' expiry.
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
        })
    };
    let sockets: Vec<_> = (0..SOCKETS)
        .map(|n| {
            let protocol = if n % 2 == 0 {
                "graphql-transport-ws"
            } else {
                "graphql-ws"
            };
            tokio::spawn(busy_socket(server.addr, protocol))
        })
        .collect();
    let mut runs = Vec::new();
    for socket in sockets {
        runs.push(socket.await.expect("socket task"));
    }
    publisher.await.expect("publisher");
    let published = published.lock().await.clone();
    crate::wait_all(
        "every event delivered",
        &published,
        &[&receiver],
        Duration::from_secs(60),
    )
    .await;

    let closed_4403 = runs.iter().filter(|r| r.close_code == Some(4403)).count();
    let slowest = runs.iter().map(|r| r.close_delay_ms).max().unwrap_or(0);
    let answered: usize = runs.iter().map(|r| r.queries_answered).sum();
    let after_exp: usize = runs.iter().map(|r| r.answered_after_exp).sum();
    let items: usize = runs.iter().map(|r| r.items_before_exp).sum();
    let told: usize = runs.iter().map(|r| r.unauthenticated).sum();
    let notes = format!(
        "{SOCKETS} sockets (both protocols), 2 subscriptions + a query every 40 ms each: \
         {closed_4403}/{SOCKETS} closed 4403, at most {slowest} ms after exp; {answered} queries and \
         {items} subscription items served before exp, {after_exp} queries answered after it; \
         {told} subscriptions told UNAUTHENTICATED"
    );
    let arrived = webhook_ids(&receiver);
    Tally::of(
        "(t) token expires on busy sockets",
        &published,
        &arrived,
        notes,
    )
    .report();
    assert_eq!(
        closed_4403, SOCKETS,
        "every socket closed with 4403: {runs:?}"
    );
    assert!(
        slowest <= CLOSE_BOUND_MS,
        "every socket closed within {CLOSE_BOUND_MS} ms of exp: {runs:?}"
    );
    assert_eq!(
        after_exp, 0,
        "no query sent after exp was answered: {runs:?}"
    );
    assert!(answered > 0, "queries ran before exp");
}
