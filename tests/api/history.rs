//! History that grows: a million events, deliveries and attempts behind the
//! queue (PostgreSQL, rows generated in SQL) must not make claiming or
//! publishing slower than on an empty database. Open deliveries are the
//! queue, and only they are indexed by due time (`deliveries_due`), so a
//! claim reads the queue, not history.

use std::time::{Duration, Instant};

use hookline::domain::queue::{self, ClaimStamp};
use hookline::ids::InstanceId;
use hookline::time::now_ms;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};

use crate::support::{TestApp, app::on_postgres, fixtures::*};

/// Rows of each kind the history gets.
const HISTORY: i64 = 1_000_000;
/// Events published (and then claimed) in each half.
const EVENTS: usize = 600;

struct Figures {
    publish_per_s: f64,
    claim_median: Duration,
    claim_p90: Duration,
}

/// Publishes `EVENTS` events 100 per call, then claims them 10 at a time
/// the way a worker does, timing both.
async fn measure(app: &TestApp, db: &DatabaseConnection, token: &str) -> Figures {
    let started = Instant::now();
    for first in (0..EVENTS).step_by(100) {
        let inputs: Vec<Value> = (first..first + 100)
            .map(|n| json!({ "type": "offer.created", "data": { "n": n } }))
            .collect();
        publish_many(app, token, inputs).await;
    }
    let publish_per_s = EVENTS as f64 / started.elapsed().as_secs_f64();
    let instance = InstanceId::new();
    let mut claims = Vec::new();
    let mut claimed = 0;
    while claimed < EVENTS {
        let now = now_ms();
        let stamp = ClaimStamp {
            now,
            lease_until: now + 60_000,
            token: claims.len() as i64 + 1,
            instance: &instance,
        };
        let started = Instant::now();
        let taken = queue::claim_due(db, 10, &[], &stamp).await.expect("claim");
        claims.push(started.elapsed());
        assert!(!taken.is_empty(), "a due delivery was not found");
        claimed += taken.len();
    }
    claims.sort();
    Figures {
        publish_per_s,
        claim_median: claims[claims.len() / 2],
        claim_p90: claims[claims.len() * 9 / 10],
    }
}

async fn one(db: &DatabaseConnection, sql: &str) -> String {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect(sql)
        .expect("a row");
    row.try_get_by_index(0).expect("a value")
}

/// A million settled events, each with its delivery and its attempt, from
/// the last few days, written in SQL (foreign-key triggers off for the load,
/// as a bulk load does; every row refers to rows that exist).
async fn fill_history(db: &DatabaseConnection) {
    let webhook = one(db, "SELECT id FROM webhooks").await;
    let endpoint = one(db, "SELECT id FROM endpoints").await;
    let day = 86_400_000;
    let start = now_ms() - 3 * day;
    let statements = [
        "SET session_replication_role = replica".to_owned(),
        format!(
            "INSERT INTO events (id, tenant_id, event_type, occurred_at, body, labels, created_at) \
             SELECT 'evt_0h' || lpad(g::text, 20, '0'), 'acme', 'offer.created', {start} + g, \
               '{{\"n\":1}}', '{{}}'::jsonb, {start} + g \
             FROM generate_series(1, {HISTORY}) AS g"
        ),
        format!(
            "INSERT INTO deliveries (id, tenant_id, event_id, webhook_id, endpoint_id, status, \
               attempt_count, last_attempt_at, last_response_status, created_at, updated_at) \
             SELECT 'dlv_0h' || lpad(g::text, 20, '0'), 'acme', 'evt_0h' || lpad(g::text, 20, '0'), \
               '{webhook}', '{endpoint}', 'SUCCEEDED', 1, {start} + g, 200, {start} + g, {start} + g \
             FROM generate_series(1, {HISTORY}) AS g"
        ),
        format!(
            "INSERT INTO delivery_attempts (id, tenant_id, delivery_id, attempt_number, \
               endpoint_url, outcome, started_at, duration_ms, response_status, endpoint_id) \
             SELECT 'att_0h' || lpad(g::text, 20, '0'), 'acme', 'dlv_0h' || lpad(g::text, 20, '0'), \
               1, 'http://127.0.0.1:9/', 'SUCCEEDED', {start} + g, 3, 200, '{endpoint}' \
             FROM generate_series(1, {HISTORY}) AS g"
        ),
        "SET session_replication_role = origin".to_owned(),
        "ANALYZE events, deliveries, delivery_attempts".to_owned(),
    ];
    for sql in statements {
        db.execute_unprepared(&sql).await.expect("fill history");
    }
}

#[tokio::test]
async fn claiming_and_publishing_cost_the_same_over_a_million_rows_of_history() {
    if !on_postgres() {
        eprintln!(
            "skipped: history at PostgreSQL's scale; CI runs it with HOOKLINE_TEST_DATABASE_URL"
        );
        return;
    }
    let app = TestApp::spawn_with(|c| c.no_worker = true).await;
    let token = app.admin("acme");
    create_webhook(&app, &token, webhook_input("http://127.0.0.1:9/")).await;
    let db = hookline::db::connect(&app.database_url)
        .await
        .expect("connect")
        .write;
    let empty = measure(&app, &db, &token).await;
    let filling = Instant::now();
    fill_history(&db).await;
    let filled_in = filling.elapsed();
    let full = measure(&app, &db, &token).await;
    let rows = one(&db, "SELECT (SELECT count(*) FROM deliveries)::text").await;
    eprintln!(
        "history: {rows} deliveries (filled in {:.1} s); publish {:.0} -> {:.0} events/s; \
         claim of 10 median {:?} -> {:?}, p90 {:?} -> {:?}",
        filled_in.as_secs_f64(),
        empty.publish_per_s,
        full.publish_per_s,
        empty.claim_median,
        full.claim_median,
        empty.claim_p90,
        full.claim_p90,
    );
    // Generous bounds: a shared machine's noise, not history, may move them.
    let bound = empty.claim_median * 3 + Duration::from_millis(2);
    assert!(
        full.claim_median <= bound,
        "claims slowed with history: median {:?} against {:?} empty",
        full.claim_median,
        empty.claim_median
    );
    assert!(
        full.publish_per_s >= empty.publish_per_s / 2.0,
        "publishing slowed with history: {:.0} against {:.0} events/s empty",
        full.publish_per_s,
        empty.publish_per_s
    );
}
