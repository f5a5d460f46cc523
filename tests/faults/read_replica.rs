//! "log queries on a read replica": hookline on a private primary with a
//! streaming replica of it (`HOOKLINE_DATABASE_READ_URL`). Log queries go to
//! the replica while it keeps up; an event just published is found at once;
//! with replay paused the replica falls behind its bound and the answers
//! come from the primary (fresh); stopped, the primary answers; resumed,
//! the replica answers again. Which database answered is read from
//! `/metrics` and checked against what the answers hold.

use std::{collections::HashSet, time::Duration};

use sea_orm::sqlx::{Connection as _, PgConnection};
use serde_json::{Value, json};

use super::{Tally, private_pg::PrivatePostgres, wait_all};
use crate::support::{
    eventually, fixtures::*, gql::Gql, jwt::admin_token, process::ServerProcess, receiver::Receiver,
};

const EVENTS: &str = "{ events(first: 100) { nodes { id } } }";

async fn sql(port: u16, statement: &str) {
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut conn)
        .await
        .expect(statement);
    conn.close().await.ok();
}

/// Log queries the replica and the primary answered so far.
async fn served(server: &ServerProcess) -> (f64, f64) {
    let by = |who: &str| format!("hookline_log_queries_total{{served_by=\"{who}\"}}");
    (
        server.metric(&by("replica")).await.unwrap_or(0.0),
        server.metric(&by("primary")).await.unwrap_or(0.0),
    )
}

async fn listed(gql: &Gql, token: &str) -> HashSet<String> {
    let data: Value = gql.ok(token, EVENTS, json!({})).await;
    data["events"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_queries_on_a_read_replica() {
    let scenario = "(h) log queries on a read replica";
    let Some(primary) = tokio::task::spawn_blocking(PrivatePostgres::start)
        .await
        .expect("start")
    else {
        Tally::skipped(
            scenario,
            "skipped: PostgreSQL's server binaries are not installed",
        )
        .report();
        return;
    };
    let replica = primary.start_replica();
    let logs = tempfile::tempdir().expect("tempdir");
    let token = admin_token("acme");
    let receiver = Receiver::ok().await;
    let server = ServerProcess::start(
        &primary.url(),
        logs.path(),
        &[
            "--database-read-url",
            &replica.url(),
            "--database-read-max-lag",
            "1s",
        ],
    );
    let gql = Gql::new(server.graphql_url());
    create_webhook(&gql, &token, fast_webhook(&receiver.url, &["*"], 10)).await;
    let mut published = HashSet::new();

    // Caught up: the replica answers, and an event is found right after its publish.
    eventually(
        "the replica answers log queries",
        Duration::from_secs(20),
        || async {
            let before = served(&server).await.0;
            listed(&gql, &token).await;
            (served(&server).await.0 > before).then_some(())
        },
    )
    .await;
    for n in 0..20 {
        let id = publish(&gql, &token, "conversion.created", json!({ "n": n }))
            .await
            .event
            .id;
        let found: Value = gql
            .ok(
                &token,
                "query($id: ID!) { event(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(
            found["event"]["id"],
            json!(id),
            "found at once after its publish"
        );
        published.insert(id);
    }
    let (by_replica, by_primary) = served(&server).await;
    eventually(
        "the replica shows every event",
        Duration::from_secs(10),
        || async {
            listed(&gql, &token)
                .await
                .is_superset(&published)
                .then_some(())
        },
    )
    .await;
    let caught_up = served(&server).await;
    assert!(caught_up.0 > by_replica, "the replica answered the lists");

    // Replay paused: the replica falls behind its bound, the primary answers.
    sql(replica.port, "SELECT pg_wal_replay_pause()").await;
    let late = publish(&gql, &token, "conversion.created", json!({ "n": "late" }))
        .await
        .event
        .id;
    published.insert(late.clone());
    tokio::time::sleep(Duration::from_millis(1_800)).await;
    let before = served(&server).await;
    assert!(
        listed(&gql, &token).await.contains(&late),
        "fresh while replay is paused"
    );
    let after = served(&server).await;
    assert!(
        after.1 > before.1 && after.0 == before.0,
        "the primary answered: {before:?} {after:?}"
    );
    let lag = server
        .metric("hookline_read_replica_lag_seconds")
        .await
        .unwrap_or(f64::NAN);
    assert!(
        lag.is_nan() || lag > 1.0,
        "lag reported over the bound: {lag}"
    );

    // Resumed: the replica answers again.
    sql(replica.port, "SELECT pg_wal_replay_resume()").await;
    eventually(
        "the replica answers again",
        Duration::from_secs(20),
        || async {
            let before = served(&server).await.0;
            let seen = listed(&gql, &token).await;
            (seen.contains(&late) && served(&server).await.0 > before).then_some(())
        },
    )
    .await;

    // Stopped: every query is still answered, by the primary.
    replica.stop();
    let more = publish(&gql, &token, "conversion.created", json!({ "n": "after" }))
        .await
        .event
        .id;
    published.insert(more.clone());
    eventually(
        "answers without the replica",
        Duration::from_secs(20),
        || async { listed(&gql, &token).await.contains(&more).then_some(()) },
    )
    .await;

    wait_all(
        "every event delivered",
        &published,
        &[&receiver],
        Duration::from_secs(30),
    )
    .await;
    let arrived = super::webhook_ids(&receiver);
    let notes = format!(
        "replica by pg_basebackup -R, bound 1s; answers by replica/primary: {:.0}/{:.0} before \
         the pause, {:.0}/{:.0} at the end; {by_primary:.0} by the primary while catching up at start",
        caught_up.0,
        caught_up.1,
        served(&server).await.0,
        served(&server).await.1
    );
    Tally::of(scenario, &published, &arrived, notes).report();
}
