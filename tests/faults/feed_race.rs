//! (f) A pull-feed reader racing concurrent batch and single publishers, on
//! SQLite and on a private PostgreSQL: every acknowledged event is served
//! once.

use std::{collections::HashSet, sync::Arc};

use crate::{
    Tally, private_pg,
    support::{app::fresh_database, feed_race, gql::Gql, jwt::admin_token, process::ServerProcess},
};

async fn race_on(scenario: &'static str, database_url: &str) {
    let logs = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(database_url, logs.path(), &["--no-worker"]);
    let gql = Gql::new(server.graphql_url());
    let race = feed_race::race(&gql, &admin_token("acme"), 5, 25).await;
    let acknowledged: HashSet<String> = race.acknowledged.iter().cloned().collect();
    let notes = format!(
        "4 publishers × 5 batches of 100 beside 8 × 25 single publishes; the reader polled with `after=next`, {} served",
        race.served.len()
    );
    Tally::of(scenario, &acknowledged, &race.served, notes).report();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_reader_racing_publishers_on_sqlite() {
    let (url, _dir) = fresh_database().await;
    race_on("(f) feed reader racing publishers, SQLite", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_reader_racing_publishers_on_postgres() {
    let pg = tokio::task::spawn_blocking(private_pg::PrivatePostgres::start)
        .await
        .expect("start")
        .expect("PostgreSQL's server binaries (initdb, pg_ctl) are needed: install postgresql");
    let pg = Arc::new(pg);
    race_on("(f) feed reader racing publishers, PostgreSQL", &pg.url()).await;
}
