//! The real binary, killed and restarted: nothing acknowledged is lost.

use std::{collections::HashSet, time::Duration};

use serde_json::{Value, json};

use crate::support::{
    app::fresh_database,
    fixtures::*,
    gql::Gql,
    process::ServerProcess,
    receiver::{Receiver, Reply},
};

const EVENTS: usize = 60;

async fn setup(gql: &Gql, token: &str, receiver: &Receiver) -> (Vec<String>, String) {
    let created = create_webhook(gql, token, fast_webhook(&receiver.url, &["*"], 10)).await;
    let inputs: Vec<Value> = (0..EVENTS)
        .map(|i| json!({ "type": "conversion.created", "data": { "n": i } }))
        .collect();
    let ids = publish_many(gql, token, inputs)
        .await
        .into_iter()
        .map(|published| published.event.id)
        .collect();
    (ids, created.secret)
}

fn arrived_ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect()
}

// Multi-threaded: the receivers must keep answering while the test blocks on
// the child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_loses_nothing() {
    let (database_url, dir) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(|_| Reply::Slow(Duration::from_millis(100))).await;
    let token = crate::support::jwt::admin_token("acme");

    let mut first =
        ServerProcess::start(&database_url, logs.path(), &["--endpoint-concurrency", "2"]);
    let gql = Gql::new(first.graphql_url());
    let (published, secret) = setup(&gql, &token, &receiver).await;
    receiver.wait_for(6, Duration::from_secs(10)).await;
    first.kill();
    let before_restart: HashSet<String> = arrived_ids(&receiver).into_iter().collect();
    assert!(
        before_restart.len() < EVENTS,
        "killed while deliveries were still pending"
    );

    let second = ServerProcess::start(&database_url, logs.path(), &["--endpoint-concurrency", "8"]);
    let wanted: HashSet<String> = published.iter().cloned().collect();
    crate::support::eventually(
        "every event to arrive after the restart",
        Duration::from_secs(30),
        || async {
            let got: HashSet<String> = arrived_ids(&receiver).into_iter().collect();
            wanted.is_subset(&got).then_some(())
        },
    )
    .await;

    // The secret never reaches a log line, at debug level, in either run.
    for log in [first.log(), second.log()] {
        assert!(!log.is_empty());
        assert!(
            !log.contains(&secret["whsec_".len()..]),
            "the signing secret leaked into the log"
        );
    }
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_hands_back_the_rest() {
    let (database_url, dir) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(|_| Reply::Slow(Duration::from_millis(300))).await;
    let token = crate::support::jwt::admin_token("acme");

    let mut first = ServerProcess::start(
        &database_url,
        logs.path(),
        &["--endpoint-concurrency", "4", "--shutdown-grace", "5s"],
    );
    let gql = Gql::new(first.graphql_url());
    let (published, _) = setup(&gql, &token, &receiver).await;
    receiver.wait_for(4, Duration::from_secs(10)).await;
    let status = first.terminate();
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status:?}\n{}",
        first.log()
    );
    let before = arrived_ids(&receiver).len();
    assert!(before < EVENTS);

    let _second =
        ServerProcess::start(&database_url, logs.path(), &["--endpoint-concurrency", "8"]);
    let wanted: HashSet<String> = published.iter().cloned().collect();
    crate::support::eventually(
        "every event to arrive after the restart",
        Duration::from_secs(30),
        || async {
            let got: HashSet<String> = arrived_ids(&receiver).into_iter().collect();
            wanted.is_subset(&got).then_some(())
        },
    )
    .await;
    // Time for a duplicate to arrive: none may.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = arrived_ids(&receiver);
    assert_eq!(
        all.len(),
        EVENTS,
        "a graceful stop records what it sent: no event arrives twice"
    );
    drop(dir);
}
