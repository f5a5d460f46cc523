//! Reads never hold up publishing: one tenant's heavy queries leave another
//! tenant's publishes free to go through.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use hookline::auth::Role;
use serde_json::{Value, json};

use crate::support::{
    GqlExt, TestApp,
    app::{fresh_database, on_postgres, skipped_without_postgres},
    fixtures::{PUBLISH, publish},
};

/// More readers than the server has connections for reading: some of them
/// are always waiting for one.
const READERS: usize = 32;
const ROUNDS: usize = 2;
/// Twice the rounds: were reads and publishes to take turns on one
/// connection, each publish would wait for about one read of every reader,
/// and the readers would be done long before the publisher.
const PUBLISHES: usize = 2 * ROUNDS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_reads_of_one_tenant_do_not_hold_up_another_tenants_publishes() {
    const EVENTS: usize = 100;
    if postgres_skipped() {
        return;
    }
    let app = TestApp::spawn().await;
    publish_large_events(&app, "reading-co", EVENTS).await;
    // A page of every stored event: the database reads all of their data
    // (about 20 MB), while the answer stays small.
    let heavy = HeavyRead {
        query: "{ events(first: 100) { edges { node { id } } } }",
        list: "events",
        rows: EVENTS,
    };
    publishes_go_through_while_reading(&app, &heavy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_event_types_with_large_schemas_does_not_hold_up_another_tenants_publishes() {
    const TYPES: usize = 150;
    if postgres_skipped() {
        return;
    }
    let app = TestApp::spawn().await;
    let admin = app.admin("reading-co");
    let description = "x".repeat(60 * 1024);
    for n in 0..TYPES {
        app.gql
            .ok(
                &admin,
                "mutation($input: CreateEventTypeInput!) { createEventType(input: $input) { name } }",
                json!({ "input": {
                    "name": format!("invoice.step_{n}"),
                    "description": "A step of an invoice",
                    "schema": { "type": "object", "description": description },
                } }),
            )
            .await;
    }
    // Every custom type is read with its schema (about 9 MB), whatever the
    // page asks for.
    let heavy = HeavyRead {
        query: "{ eventTypes(first: 100, filter: { object: \"invoice\" }) { edges { node { name } } } }",
        list: "eventTypes",
        rows: 100,
    };
    publishes_go_through_while_reading(&app, &heavy).await;
}

/// Publishes `count` events of `tenant` with about 200 KiB of `data` each
/// (`{ "n": 0.., "blob": "xxx…" }`).
pub(crate) async fn publish_large_events(app: &TestApp, tenant: &str, count: usize) {
    let blob = "x".repeat(200 * 1024);
    let big: Vec<Value> = (0..count)
        .map(|n| json!({ "type": "offer.created", "data": { "n": n, "blob": blob } }))
        .collect();
    let publisher = app.token(tenant, Role::Publisher);
    for batch in big.chunks(20) {
        app.gql
            .ok(
                &publisher,
                "mutation($inputs: [PublishEventInput!]!) { publishEvents(inputs: $inputs) { duplicate } }",
                json!({ "inputs": batch }),
            )
            .await;
    }
}

/// These tests run on SQLite only. PostgreSQL gives queries a pool of their
/// own as well, but there rows are decoded on the server's async workers: in
/// a debug build on two cores, decoding 32 readers' pages starves the
/// publisher of CPU, which these tests cannot tell from waiting for the
/// database.
pub(crate) fn postgres_skipped() -> bool {
    if on_postgres() {
        eprintln!(
            "skipped on PostgreSQL: reads there compete with publishing for CPU, not connections"
        );
    }
    on_postgres()
}

struct HeavyRead {
    query: &'static str,
    /// The connection the query answers, and how many rows it must hold.
    list: &'static str,
    rows: usize,
}

/// `READERS` viewers of `reading-co` run `heavy` `ROUNDS` times each while a
/// publisher of `publishing-co` publishes `PUBLISHES` events one after the
/// other: every publish succeeds, and all are done before the readers are.
/// Readers only wait for readers: one that finds every reading connection
/// busy for the pool's timeout is told UNAVAILABLE, a bounded wait.
async fn publishes_go_through_while_reading(app: &TestApp, heavy: &HeavyRead) {
    let viewer = app.token("reading-co", Role::Viewer);
    let publisher = app.token("publishing-co", Role::Publisher);
    let reads_done = Arc::new(AtomicUsize::new(0));
    let failed_reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let gql = app.gql.clone();
            let viewer = viewer.clone();
            let (query, list, rows) = (heavy.query, heavy.list, heavy.rows);
            let (done, failed) = (reads_done.clone(), failed_reads.clone());
            tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let body = gql.run(Some(&viewer), query, json!({})).await;
                    let read = body["data"][list]["edges"].as_array().map_or(0, Vec::len);
                    // Readers wait for one another, a bounded while.
                    let waited_too_long = body["errors"][0].code() == "UNAVAILABLE";
                    if read != rows && !waited_too_long {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // The readers are in full swing once the first of them has been served.
    crate::support::eventually(
        "a first heavy read",
        std::time::Duration::from_secs(60),
        || async { (reads_done.load(Ordering::SeqCst) > 0).then_some(()) },
    )
    .await;
    let reads_before = reads_done.load(Ordering::SeqCst);

    let mut refused = Vec::new();
    for n in 0..PUBLISHES {
        let body = app
            .gql
            .run(
                Some(&publisher),
                PUBLISH,
                json!({ "input": { "type": "offer.created", "data": { "n": n } } }),
            )
            .await;
        if let Some(error) = body["errors"].get(0) {
            refused.push(error.code().to_owned());
        }
    }
    let reads_meanwhile = reads_done.load(Ordering::SeqCst) - reads_before;
    for reader in readers {
        reader.await.expect("reader");
    }

    eprintln!(
        "{PUBLISHES} publishes: {} refused; reads: {reads_before} before, \
         {reads_meanwhile} while publishing, {} in all",
        refused.len(),
        READERS * ROUNDS
    );
    assert!(refused.is_empty(), "publishes refused: {refused:?}");
    assert!(
        reads_done.load(Ordering::SeqCst) - reads_before > reads_meanwhile,
        "all {PUBLISHES} publishes should be done while the readers are still busy, \
         but the readers finished first ({reads_meanwhile} reads while publishing, \
         {reads_before} before)"
    );
    assert_eq!(
        failed_reads.load(Ordering::SeqCst),
        0,
        "every read answers, or is UNAVAILABLE after waiting for a connection"
    );
}

/// A read URL naming something other than a copy of the primary's database
/// (here another schema of the same server, migrated but empty) is never
/// used: every log query answers from the primary. It was used before, as
/// a server not in recovery counted as "behind nobody", and the list below
/// came back empty.
#[tokio::test]
async fn a_read_url_that_is_not_a_replica_is_never_used() {
    if skipped_without_postgres("read replicas are PostgreSQL's") {
        return;
    }
    let (other, _) = fresh_database().await;
    hookline::db::migrate(&other)
        .await
        .expect("migrate the other schema");
    let app = TestApp::spawn_with(|c| c.store.database_read_url = Some(other.clone())).await;
    let token = app.admin("acme");
    let published = publish(&app, &token, "offer.created", json!({ "n": 1 })).await;
    // Several of the lag's measures.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let listed: Value = app
        .gql
        .field(
            &token,
            "query { events(first: 10) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["nodes"][0]["id"],
        json!(published.event.id),
        "{listed}"
    );
    let by = |who: &str| format!("hookline_log_queries_total{{served_by=\"{who}\"}}");
    assert_eq!(app.metric(&by("replica")).await.unwrap_or(0.0), 0.0);
    assert!(app.metric(&by("primary")).await.unwrap_or(0.0) >= 1.0);
}
