//! (e) A receiver whose every reply carries a NUL byte and invalid UTF-8,
//! beside another tenant's healthy receiver, on SQLite and on a private
//! PostgreSQL (whose text columns refuse NUL): both tenants' deliveries
//! settle as SUCCEEDED, none stays PENDING, and the healthy tenant's arrive
//! within seconds.

use std::{collections::HashSet, sync::Arc, time::Instant};

use serde_json::json;

use crate::{
    Tally, private_pg, publish_batch,
    support::{
        app::fresh_database,
        eventually,
        fixtures::*,
        gql::Gql,
        jwt::admin_token,
        process::ServerProcess,
        receiver::{Receiver, Reply},
    },
    webhook_ids,
};

const BATCHES: usize = 20;
const PER_BATCH: usize = 10;

async fn poison_body_on(scenario: &'static str, database_url: &str) {
    let logs = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(database_url, logs.path(), &[]);
    let gql = Gql::new(server.graphql_url());
    let (healthy, poisoned) = (admin_token("acme"), admin_token("mallory"));
    let good = Receiver::ok().await;
    let poison = Receiver::start(|_| Reply::Raw(200, b"ok\0\xff\xfe{\"a\":\"\0\"}")).await;
    for (token, receiver) in [(&healthy, &good), (&poisoned, &poison)] {
        create_webhook(&gql, token, fast_webhook(&receiver.url, &["*"], 3)).await;
    }

    // The poisoned tenant goes first in every round, so its replies are in
    // the recorder's batches before the healthy tenant's.
    let started = Instant::now();
    let mut acknowledged = HashSet::new();
    for round in 0..BATCHES {
        publish_batch(&gql, &poisoned, round * PER_BATCH, PER_BATCH)
            .await
            .expect("poisoned tenant's publish");
        acknowledged.extend(
            publish_batch(&gql, &healthy, round * PER_BATCH, PER_BATCH)
                .await
                .expect("healthy tenant's publish"),
        );
    }
    let total = BATCHES * PER_BATCH;
    eventually(
        "the healthy tenant's deliveries arrive",
        std::time::Duration::from_secs(30),
        || async { (good.count() >= total).then_some(()) },
    )
    .await;
    let arrived_after = started.elapsed();
    // Arrived is not enough: every attempt must be recorded and every
    // delivery settled, for both tenants.
    for (who, token) in [("healthy", &healthy), ("poisoned", &poisoned)] {
        wait_stats(
            &gql,
            token,
            &format!("the {who} tenant's deliveries settle"),
            std::time::Duration::from_secs(30),
            |s| s.succeeded == total as u64 && s.pending == 0 && s.retrying == 0,
        )
        .await;
    }
    let settled_after = started.elapsed();
    assert_eq!(poison.count(), total, "each poisoned reply was taken once");
    let body = gql
        .ok(
            &poisoned,
            "{ deliveries(first: 1) { edges { node { attempts { responseBody } } } } }",
            json!({}),
        )
        .await;
    let stored = body["deliveries"]["edges"][0]["node"]["attempts"][0]["responseBody"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(stored.starts_with("ok\u{fffd}"), "stored body: {stored:?}");
    let notes = format!(
        "beside {total} replies with NUL and invalid UTF-8 from another tenant: all arrived in {:.1} s, \
         both tenants' {total} SUCCEEDED (none PENDING) in {:.1} s",
        arrived_after.as_secs_f64(),
        settled_after.as_secs_f64()
    );
    Tally::of(scenario, &acknowledged, &webhook_ids(&good), notes).report();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_response_body_beside_a_healthy_tenant_on_sqlite() {
    let (url, _dir) = fresh_database().await;
    poison_body_on("(e) poison response body, SQLite", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_response_body_beside_a_healthy_tenant_on_postgres() {
    let pg = tokio::task::spawn_blocking(private_pg::PrivatePostgres::start)
        .await
        .expect("start")
        .expect("PostgreSQL's server binaries (initdb, pg_ctl) are needed: install postgresql");
    let pg = Arc::new(pg);
    poison_body_on("(e) poison response body, PostgreSQL", &pg.url()).await;
}
