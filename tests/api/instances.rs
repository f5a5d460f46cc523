//! Several `hookline serve` processes on one PostgreSQL: shared work,
//! exactly-once without crashes, nothing lost when one is killed, and live
//! news crossing instances. Ignored on SQLite (one instance is its limit).

use std::{collections::HashMap, time::Duration};

use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

use crate::support::{
    app::{fresh_database, on_postgres},
    eventually,
    fixtures::*,
    gql::Gql,
    jwt::admin_token,
    process::ServerProcess,
    receiver::{Receiver, Reply},
    ws::WsClient,
};

/// These tests are `#[ignore]`d, so a plain `cargo test` lists them as
/// skipped; CI runs them on PostgreSQL with `--include-ignored`. Run without
/// PostgreSQL, they fail instead of passing in silence.
pub(crate) fn require_postgres() {
    assert!(
        on_postgres(),
        "several instances need PostgreSQL: set HOOKLINE_TEST_DATABASE_URL"
    );
}

/// Starts two instances at once, so they also race to migrate.
pub(crate) fn start_pair(
    url: &str,
    logs: &std::path::Path,
    a: &'static [&'static str],
    b: &'static [&'static str],
) -> (ServerProcess, ServerProcess) {
    let (url_a, logs_a) = (url.to_owned(), logs.to_owned());
    let first = std::thread::spawn(move || ServerProcess::start(&url_a, &logs_a, a));
    let second = ServerProcess::start(url, logs, b);
    (first.join().expect("first instance"), second)
}

/// How many attempts each instance made, read from the database at `url`.
pub(crate) async fn attempts_per_instance(url: &str) -> Vec<i64> {
    let db = Database::connect(url).await.expect("connect");
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT instance_id, COUNT(*) AS n FROM delivery_attempts GROUP BY instance_id",
        ))
        .await
        .expect("query");
    rows.iter()
        .map(|r| r.try_get::<i64>("", "n").expect("n"))
        .collect()
}

async fn publish_conversions(gql: &Gql, token: &str, count: usize) {
    for start in (0..count).step_by(250) {
        let inputs: Vec<Value> = (start..(start + 250).min(count))
            .map(|n| json!({ "type": "conversion.created", "data": { "n": n } }))
            .collect();
        gql.ok(token, "mutation($inputs: [PublishEventInput!]!) { publishEvents(inputs: $inputs) { deliveryCount } }", json!({ "inputs": inputs }))
            .await;
    }
}

fn arrivals_by_key(receivers: &[&Receiver]) -> HashMap<(usize, String), usize> {
    let mut counts = HashMap::new();
    for (index, receiver) in receivers.iter().enumerate() {
        for request in receiver.received() {
            *counts
                .entry((index, request.header("webhook-id").to_owned()))
                .or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: HOOKLINE_TEST_DATABASE_URL and --include-ignored"]
async fn two_instances_deliver_each_event_exactly_once_between_them() {
    require_postgres();
    let (url, _) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    // Each instance holds at most 16 deliveries at a time and each request
    // takes a few ms, so neither can take all the work: both must share it.
    let limits: &[&str] = &["--worker-concurrency", "16", "--endpoint-concurrency", "16"];
    let (a, _b) = start_pair(&url, logs.path(), limits, limits);
    let token = admin_token("acme");
    let gql = Gql::new(a.graphql_url());
    let slow = || Receiver::start(|_| Reply::Slow(Duration::from_millis(3)));
    let receivers = [slow().await, slow().await, slow().await];
    let input = json!({
        "name": "three endpoints",
        "eventTypes": ["*"],
        "endpoints": receivers.iter().map(|r| json!({ "url": r.url })).collect::<Vec<_>>(),
    });
    gql.ok(&token, &create_webhook_doc(), json!({ "input": input }))
        .await;
    publish_conversions(&gql, &token, 1_000).await;

    let all: Vec<&Receiver> = receivers.iter().collect();
    eventually("3 000 deliveries", Duration::from_secs(60), || async {
        (arrivals_by_key(&all).len() == 3_000).then_some(())
    })
    .await;
    wait_stats(
        &gql,
        &token,
        "every attempt recorded",
        Duration::from_secs(30),
        |s| s.succeeded == 3_000,
    )
    .await;
    // Time for a duplicate to arrive: none may.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts = arrivals_by_key(&all);
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {} deliveries",
        repeated.len()
    );

    let per_instance = attempts_per_instance(&url).await;
    assert_eq!(
        per_instance.len(),
        2,
        "both instances made attempts: {per_instance:?}"
    );
    assert_eq!(
        per_instance.iter().sum::<i64>(),
        3_000,
        "one attempt per delivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: HOOKLINE_TEST_DATABASE_URL and --include-ignored"]
async fn killing_one_instance_mid_run_loses_nothing() {
    require_postgres();
    let (url, _) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let (mut a, _b) = start_pair(
        &url,
        logs.path(),
        &["--endpoint-concurrency", "4"],
        &["--endpoint-concurrency", "4"],
    );
    let token = admin_token("acme");
    let gql = Gql::new(a.graphql_url());
    let receiver = Receiver::start(|_| Reply::Slow(Duration::from_millis(40))).await;
    gql.ok(
        &token,
        &create_webhook_doc(),
        json!({ "input": fast_webhook(&receiver.url, &["*"], 10) }),
    )
    .await;
    publish_conversions(&gql, &token, 400).await;
    receiver.wait_for(40, Duration::from_secs(20)).await;
    a.kill();
    let all = [&receiver];
    eventually(
        "all 400 events after the kill",
        Duration::from_secs(60),
        || async { (arrivals_by_key(&all).len() == 400).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: HOOKLINE_TEST_DATABASE_URL and --include-ignored"]
async fn a_subscriber_on_one_instance_sees_what_another_does() {
    require_postgres();
    let (url, _) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    // A serves the API only; B does all the delivering.
    let (api, worker) = start_pair(&url, logs.path(), &["--no-worker"], &[]);
    let token = admin_token("acme");
    let gql = Gql::new(api.graphql_url());
    let receiver = Receiver::ok().await;
    gql.ok(
        &token,
        &create_webhook_doc(),
        json!({ "input": fast_webhook(&receiver.url, &["*"], 3) }),
    )
    .await;

    let mut on_api = WsClient::connect(api.addr, "graphql-transport-ws", None).await;
    on_api
        .init(json!({ "Authorization": format!("Bearer {token}") }))
        .await
        .expect("ack");
    on_api
        .subscribe_listening(
            "1",
            "subscription { deliveryAttempts { eventId attemptNumber outcome } }",
            json!({}),
        )
        .await;
    let mut on_worker = WsClient::connect(worker.addr, "graphql-ws", None).await;
    on_worker
        .init(json!({ "Authorization": format!("Bearer {token}") }))
        .await
        .expect("ack");
    on_worker
        .subscribe_listening("1", "subscription { eventsPublished { id } }", json!({}))
        .await;

    let published = publish(&gql, &token, "offer.created", json!({})).await;
    let event_id = published.event.id;
    let attempt = on_api.next_payload(Duration::from_secs(10)).await;
    assert_eq!(
        attempt["data"]["deliveryAttempts"]["eventId"], event_id,
        "attempt made by the other instance"
    );
    assert_eq!(attempt["data"]["deliveryAttempts"]["outcome"], "SUCCEEDED");
    let event = on_worker.next_payload(Duration::from_secs(10)).await;
    assert_eq!(
        event["data"]["eventsPublished"]["id"], event_id,
        "event published on the other instance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: HOOKLINE_TEST_DATABASE_URL and --include-ignored"]
async fn a_webhook_created_on_one_instance_is_matched_at_once_on_another() {
    require_postgres();
    let (url, _) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let (a, b) = start_pair(&url, logs.path(), &[], &[]);
    let token = admin_token("acme");
    let (on_a, on_b) = (Gql::new(a.graphql_url()), Gql::new(b.graphql_url()));
    let first = Receiver::ok().await;
    on_a.ok(
        &token,
        &create_webhook_doc(),
        json!({ "input": fast_webhook(&first.url, &["*"], 3) }),
    )
    .await;
    // A has now cached the tenant's webhooks.
    let offer = json!({ "type": "offer.created", "data": {} });
    let before = publish_input(&on_a, &token, offer.clone()).await;
    assert_eq!(before.delivery_count, 1);
    // B adds a webhook and pauses the first one; A must see both changes.
    let second = Receiver::ok().await;
    on_b.ok(
        &token,
        &create_webhook_doc(),
        json!({ "input": fast_webhook(&second.url, &["offer.*"], 3) }),
    )
    .await;
    let listed = on_b
        .ok(
            &token,
            "{ webhooks(filter: {eventType: \"affiliate.created\"}) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    let first_id = listed["webhooks"]["edges"][0]["node"]["id"].clone();
    on_b.ok(
        &token,
        "mutation($id: ID!) { updateWebhook(id: $id, input: {status: PAUSED}) { status } }",
        json!({ "id": first_id }),
    )
    .await;
    let after = publish_input(&on_a, &token, offer).await;
    assert_eq!(after.delivery_count, 1, "only the new webhook matches now");
    second.wait_for(1, Duration::from_secs(10)).await;
}

/// An instance that was alone skips NOTIFY. When a second one starts, the
/// first must hear of it at once (the newcomer says hello as it starts
/// listening), not at its next heartbeat: with a 60 s timeout that is 12 s
/// away, and until then the newcomer's subscribers would miss the first
/// instance's news.
#[tokio::test]
#[ignore = "needs PostgreSQL: HOOKLINE_TEST_DATABASE_URL and --include-ignored"]
async fn an_instance_that_was_alone_relays_to_a_newcomer_at_once() {
    require_postgres();
    let (url, _) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let slow_beat = ["--no-worker", "--instance-timeout", "60s"];
    let first = ServerProcess::start(&url, logs.path(), &slow_beat);
    // Let the first one count its peers (none) before the newcomer exists.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = ServerProcess::start(&url, logs.path(), &["--instance-timeout", "60s"]);
    let token = admin_token("acme");
    let mut on_second = WsClient::connect(second.addr, "graphql-transport-ws", None).await;
    on_second
        .init(json!({ "Authorization": format!("Bearer {token}") }))
        .await
        .expect("ack");
    on_second
        .subscribe_listening("1", "subscription { eventsPublished { id } }", json!({}))
        .await;
    let gql = Gql::new(first.graphql_url());
    let published = publish(&gql, &token, "offer.created", json!({})).await;
    let event = on_second.next_payload(Duration::from_secs(5)).await;
    assert_eq!(
        event["data"]["eventsPublished"]["id"], published.event.id,
        "the event published on the first instance reached the newcomer's subscriber"
    );
}
