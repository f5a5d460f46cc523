//! An instance whose link to PostgreSQL breaks hears none of the other
//! instances' news meanwhile. Once it listens again, its subscribers get
//! what they missed, each attempt and each status change exactly once.
//! Ignored on SQLite (one instance is its limit).

use std::{collections::HashMap, time::Duration};

use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

use crate::{
    instances::require_postgres,
    support::{
        app::fresh_database,
        fixtures::*,
        forwarder::Forwarder,
        gql::Gql,
        jwt::admin_token,
        process::ServerProcess,
        receiver::{Receiver, Reply},
        ws::WsClient,
    },
};

const WAIT: Duration = Duration::from_secs(60);
/// The slow receiver's answer comes this long after the request, well
/// within the webhook's timeout.
const SLOW: Duration = Duration::from_secs(10);
const ATTEMPTS: &str = "subscription { deliveryAttempts { id deliveryId attemptNumber } }";
const CHANGES: &str = "subscription { deliveryStatusChanged { id status attemptCount } }";

/// What the subscriber got: attempt ids, and (delivery, status, attempt
/// count) per change, each as often as it came.
#[derive(Default, Debug)]
struct Told {
    attempts: Vec<String>,
    changes: Vec<(String, String, i64)>,
}

impl Told {
    fn take(&mut self, message: &Value) {
        let data = &message["payload"]["data"];
        match message["id"].as_str() {
            Some("attempts") => {
                let attempt = &data["deliveryAttempts"];
                self.attempts
                    .push(attempt["id"].as_str().expect("id").to_owned());
            }
            Some("changes") => {
                let change = &data["deliveryStatusChanged"];
                self.changes.push((
                    change["id"].as_str().expect("id").to_owned(),
                    change["status"].as_str().expect("status").to_owned(),
                    change["attemptCount"].as_i64().expect("attemptCount"),
                ));
            }
            _ => panic!("unexpected message {message}"),
        }
    }

    /// Takes what comes until `done` holds, failing after `within`.
    async fn until(&mut self, ws: &mut WsClient, within: Duration, done: impl Fn(&Self) -> bool) {
        let start = std::time::Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < within,
                "timed out after {within:?}; the subscriber got {self:?}"
            );
            if let Some(message) = ws.poll(Duration::from_millis(500)).await {
                self.take(&message.expect("the socket stays open"));
            }
        }
    }

    /// Takes whatever else comes within `quiet`.
    async fn rest(&mut self, ws: &mut WsClient, quiet: Duration) {
        while let Some(message) = ws.poll(quiet).await {
            self.take(&message.expect("the socket stays open"));
        }
    }
}

/// `url` with its host and port those of a forwarder to them.
async fn forwarded(url: &str) -> (Forwarder, String) {
    let mut parsed = reqwest::Url::parse(url).expect("database URL");
    let upstream = format!(
        "{}:{}",
        parsed.host_str().expect("host"),
        parsed.port().unwrap_or(5432)
    );
    let upstream = tokio::net::lookup_host(&upstream)
        .await
        .expect("database address")
        .next()
        .expect("an address");
    let forwarder = Forwarder::start(upstream).await;
    parsed.set_host(Some("127.0.0.1")).expect("host");
    parsed.set_port(Some(forwarder.addr.port())).expect("port");
    (forwarder, parsed.to_string())
}

/// Every attempt in the database, and the status changes they made: each
/// delivery here settles by its last attempt, after a first that failed if
/// it had two.
async fn recorded(url: &str) -> (Vec<String>, Vec<(String, String, i64)>) {
    let db = Database::connect(url).await.expect("connect");
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id, delivery_id FROM delivery_attempts",
        ))
        .await
        .expect("query");
    let mut per_delivery: HashMap<String, i64> = HashMap::new();
    let mut attempts = Vec::new();
    for row in rows {
        attempts.push(row.try_get::<String>("", "id").expect("id"));
        *per_delivery
            .entry(row.try_get("", "delivery_id").expect("delivery_id"))
            .or_default() += 1;
    }
    let mut changes = Vec::new();
    for (delivery, count) in per_delivery {
        if count == 2 {
            changes.push((delivery.clone(), "RETRYING".to_owned(), 1));
        }
        changes.push((delivery, "SUCCEEDED".to_owned(), count));
    }
    (attempts, changes)
}

async fn subscriber(instance: &ServerProcess, token: &str) -> WsClient {
    let mut ws = WsClient::connect(instance.addr, "graphql-transport-ws", None).await;
    ws.init(json!({ "Authorization": format!("Bearer {token}") }))
        .await
        .expect("ack");
    ws.subscribe_listening("attempts", ATTEMPTS, json!({}))
        .await;
    ws.subscribe_listening("changes", CHANGES, json!({})).await;
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: HOOKLINE_TEST_DATABASE_URL and --include-ignored"]
async fn a_subscriber_gets_what_its_instance_missed_while_not_listening() {
    require_postgres();
    let (url, _) = fresh_database().await;
    let (link, url_through_link) = forwarded(&url).await;
    let logs = tempfile::tempdir().expect("tempdir");
    // A serves the API only, through the link the test cuts; B delivers.
    let a = ServerProcess::start(&url_through_link, logs.path(), &["--no-worker"]);
    let b = ServerProcess::start(&url, logs.path(), &[]);
    let token = admin_token("acme");
    let on_b = Gql::new(b.graphql_url());
    let quick = Receiver::ok().await;
    let slow = Receiver::start(|_| Reply::Slow(SLOW)).await;
    let flaky = Receiver::start(|n| Reply::Status(if n == 0 { 500 } else { 200 })).await;
    for (receiver, types) in [
        (&quick, "click.*"),
        (&slow, "conversion.*"),
        (&flaky, "commission.*"),
    ] {
        let mut input = fast_webhook(&receiver.url, &[types], 3);
        input["timeoutMs"] = json!(20_000);
        create_webhook(&on_b, &token, input).await;
    }
    let mut ws = subscriber(&a, &token).await;
    let mut told = Told::default();

    // A slow request starts; more than 5 s later A hears of a quick one.
    publish(&on_b, &token, "conversion.created", json!({})).await;
    slow.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    publish(&on_b, &token, "click.created", json!({})).await;
    told.until(&mut ws, WAIT, |t| {
        t.attempts.len() == 1 && t.changes.len() == 1
    })
    .await;

    // While A hears nothing: the slow request ends, three quick events are
    // delivered, and one that fails once and then succeeds.
    link.cut();
    for _ in 0..3 {
        publish(&on_b, &token, "click.created", json!({})).await;
    }
    publish(&on_b, &token, "commission.created", json!({})).await;
    wait_stats(&on_b, &token, "B settled every delivery", WAIT, |s| {
        s.succeeded == 6 && s.attempts == 7
    })
    .await;
    assert_eq!(slow.count(), 1, "the slow request was made once");
    link.restore();

    let (mut attempts, mut changes) = recorded(&url).await;
    assert_eq!((attempts.len(), changes.len()), (7, 7));
    told.until(&mut ws, WAIT, |t| {
        t.attempts.len() >= attempts.len() && t.changes.len() >= changes.len()
    })
    .await;
    // Time for a repeat to arrive: none may.
    told.rest(&mut ws, Duration::from_secs(3)).await;
    attempts.sort();
    changes.sort();
    told.attempts.sort();
    told.changes.sort();
    assert_eq!(told.attempts, attempts, "every attempt, once");
    assert_eq!(told.changes, changes, "every status change, once");
}
