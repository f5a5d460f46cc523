//! PostgreSQL keeps history in one partition per week: retention drops whole
//! weeks (with what belongs to them elsewhere) and stops at a week an open
//! delivery still needs; a database partitioned with history keeps every row
//! and every idempotency key.

use std::time::{Duration, Instant};

use hookline::domain::retention::{self, Purged};
use hookline::time::now_ms;
use migration::{
    Migrator, MigratorTrait,
    partitioning::{DAY_MS, SPAN_DAYS, TABLES, id_floor, make_weeks, span_partition, span_start},
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::json;

use crate::support::{
    TestApp,
    app::{fresh_database, skipped_without_postgres},
    fixtures::*,
    receiver::Receiver,
};

/// An id with `prefix` made a minute into `day` (days since the epoch),
/// told apart by `n`.
fn id_on(prefix: &str, day: i64, n: u32) -> String {
    let floor = id_floor(prefix, day * DAY_MS + 60_000);
    format!("{}{n:016}", &floor[..floor.len() - 16])
}

async fn exec(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql).await.expect(sql);
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect(sql)
        .expect("a row");
    row.try_get_by_index(0).expect("a count")
}

async fn table_exists(db: &DatabaseConnection, name: &str) -> bool {
    count(
        db,
        &format!(
            "SELECT count(*) FROM pg_class WHERE relname = '{name}' \
                  AND relnamespace = current_schema()::regnamespace"
        ),
    )
    .await
        == 1
}

/// An event of `day` with one delivery in `status` and, when settled, one attempt.
async fn event_on(
    db: &DatabaseConnection,
    day: i64,
    n: u32,
    status: &str,
    hook: &(String, String),
) {
    let (webhook, endpoint) = hook;
    let at = day * DAY_MS + 60_000;
    let (event, delivery) = (id_on("evt_", day, n), id_on("dlv_", day, n));
    let next = if status == "PENDING" {
        format!("{}", now_ms() + DAY_MS)
    } else {
        "NULL".into()
    };
    exec(
        db,
        &format!(
            "INSERT INTO events (id, tenant_id, event_type, occurred_at, body, labels, created_at) \
         VALUES ('{event}', 'acme', 'offer.created', {at}, '{{}}', '{{}}', {at})"
        ),
    )
    .await;
    exec(db, &format!(
        "INSERT INTO deliveries (id, tenant_id, event_id, webhook_id, endpoint_id, status, \
         attempt_count, next_attempt_at, created_at, updated_at) \
         VALUES ('{delivery}', 'acme', '{event}', '{webhook}', '{endpoint}', '{status}', 1, {next}, {at}, {at})"
    ))
    .await;
    if status == "PENDING" {
        exec(
            db,
            &format!(
                "INSERT INTO delivery_queue (id, tenant_id, event_id, webhook_id, endpoint_id, \
             attempt_count, due_at) \
             VALUES ('{delivery}', 'acme', '{event}', '{webhook}', '{endpoint}', 1, {next})"
            ),
        )
        .await;
    }
    attempt(db, &id_on("att_", day, n), &delivery, endpoint).await;
}

async fn attempt(db: &DatabaseConnection, id: &str, delivery: &str, endpoint: &str) {
    exec(db, &format!(
        "INSERT INTO delivery_attempts (id, tenant_id, delivery_id, attempt_number, endpoint_url, \
         outcome, started_at, duration_ms, endpoint_id) \
         VALUES ('{id}', 'acme', '{delivery}', 1, 'http://127.0.0.1:9/', 'SUCCEEDED', 1, 1, '{endpoint}')"
    ))
    .await;
}

#[tokio::test]
async fn retention_drops_whole_weeks_and_keeps_what_an_open_delivery_needs() {
    if skipped_without_postgres("partitions are PostgreSQL's") {
        return;
    }
    let app = TestApp::spawn_with(|c| c.no_worker = true).await;
    let token = app.admin("acme");
    let hook = create_webhook(&app, &token, webhook_input("http://127.0.0.1:9/")).await;
    let today_event = publish(&app, &token, "offer.created", json!({ "n": 1 })).await;
    let db = hookline::db::connect(&app.database_url)
        .await
        .expect("connect")
        .write;
    let hook = (
        hook.webhook.id.clone(),
        hook.webhook.endpoints[0].id.clone(),
    );
    let today = now_ms() / DAY_MS;
    // Three weeks, the newest ending at least 40 days ago.
    let c = span_start(today - 40 - SPAN_DAYS);
    let (a, b) = (c - 2 * SPAN_DAYS, c - SPAN_DAYS);
    exec(&db, &make_weeks(a, c + SPAN_DAYS).join("; ")).await;
    event_on(&db, a, 1, "SUCCEEDED", &hook).await;
    event_on(&db, b, 1, "PENDING", &hook).await;
    event_on(&db, c, 1, "SUCCEEDED", &hook).await;
    // What belongs to week a but was written later: a replay's delivery
    // (today) with its attempt, and a late retry's attempt (week b).
    let replay = id_on("dlv_", today, 7);
    exec(
        &db,
        &format!(
            "INSERT INTO deliveries (id, tenant_id, event_id, webhook_id, endpoint_id, status, \
         attempt_count, created_at, updated_at) VALUES ('{replay}', 'acme', '{}', '{}', '{}', \
         'SUCCEEDED', 1, 1, 1)",
            id_on("evt_", a, 1),
            hook.0,
            hook.1
        ),
    )
    .await;
    attempt(&db, &id_on("att_", today, 7), &replay, &hook.1).await;
    attempt(&db, &id_on("att_", b, 8), &id_on("dlv_", a, 1), &hook.1).await;

    let month = Duration::from_secs(30 * 86_400);
    let purged = retention::purge(&db, month).await.expect("purge");
    // Weeks a and c whole; week b is kept for its open delivery, without
    // holding up week c (it used to stop the drops there, and week c went
    // row by row).
    assert_eq!(
        purged,
        Purged {
            weeks: 2,
            events: 0
        }
    );
    for (table, _) in TABLES {
        for week in [a, c] {
            assert!(
                !table_exists(&db, &span_partition(table, week)).await,
                "{table} of {week}"
            );
        }
        assert!(
            table_exists(&db, &span_partition(table, b)).await,
            "{table} of week b"
        );
    }
    let gone = format!(
        "SELECT (SELECT count(*) FROM deliveries WHERE id = '{replay}') \
         + (SELECT count(*) FROM delivery_attempts WHERE delivery_id IN ('{replay}', '{}'))",
        id_on("dlv_", a, 1)
    );
    assert_eq!(
        count(&db, &gone).await,
        0,
        "week a's rows written later went with it"
    );
    let events_of = |week| {
        format!(
            "SELECT count(*) FROM events WHERE id = '{}'",
            id_on("evt_", week, 1)
        )
    };
    assert_eq!(
        count(&db, &events_of(b)).await,
        1,
        "the open delivery's event stays"
    );
    assert_eq!(
        count(&db, &events_of(c)).await,
        0,
        "week c's settled event went with its week"
    );

    let settled = id_on("dlv_", b, 1);
    let settle = format!(
        "DELETE FROM delivery_queue WHERE id = '{settled}'; \
         UPDATE deliveries SET status = 'SUCCEEDED', next_attempt_at = NULL WHERE id = '{settled}'"
    );
    exec(&db, &settle).await;
    let purged = retention::purge(&db, month).await.expect("purge");
    assert_eq!(
        purged,
        Purged {
            weeks: 1,
            events: 0
        }
    );
    for (table, _) in TABLES {
        for week in [b, c] {
            assert!(
                !table_exists(&db, &span_partition(table, week)).await,
                "{table} of {week}"
            );
        }
        assert!(
            table_exists(&db, &span_partition(table, span_start(today))).await,
            "{table} this week"
        );
    }
    let kept = format!(
        "SELECT count(*) FROM events WHERE id = '{}'",
        today_event.event.id
    );
    assert_eq!(count(&db, &kept).await, 1, "today's event stays");
    let stray = "SELECT (SELECT count(*) FROM events_default) + (SELECT count(*) FROM deliveries_default) \
                 + (SELECT count(*) FROM delivery_attempts_default)";
    assert_eq!(count(&db, stray).await, 0, "nothing fell outside the weeks");
}

/// Migrations before the one that partitions history.
const BEFORE_PARTITIONS: u32 = 19;
/// Rows of each kind in the database partitioned with its history.
const ROWS: i64 = 100_000;

#[tokio::test]
async fn a_database_partitioned_with_its_history_keeps_every_row_and_key() {
    if skipped_without_postgres("partitions are PostgreSQL's") {
        return;
    }
    let (url, _dir) = fresh_database().await;
    let db = Database::connect(&url).await.expect("connect");
    Migrator::up(&db, Some(BEFORE_PARTITIONS))
        .await
        .expect("migrate to before");
    let hour_ago = now_ms() - 3_600_000;
    // One string: the setting must hold on the connection the rows go through
    // (they name a webhook that does not exist; their endpoint does, for the
    // queue's foreign key).
    let fill = [
        "SET session_replication_role = replica".to_owned(),
        "INSERT INTO endpoints (id, webhook_id, tenant_id, url, headers, position, created_at) \
         VALUES ('ep_x', 'wh_x', 'acme', 'http://127.0.0.1:9/', '{}', 0, 1)"
            .to_owned(),
        format!(
            "INSERT INTO events (id, tenant_id, event_type, occurred_at, body, labels, \
             idempotency_key, created_at) \
             SELECT 'evt_01k0' || lpad(g::text, 22, '0'), 'acme', 'offer.created', 1, '{{}}', '{{}}', \
             CASE WHEN g <= 10 THEN 'key-' || g END, {hour_ago} FROM generate_series(1, {ROWS}) g"
        ),
        format!(
            "INSERT INTO deliveries (id, tenant_id, event_id, webhook_id, endpoint_id, status, \
             attempt_count, next_attempt_at, created_at, updated_at) \
             SELECT 'dlv_01k0' || lpad(g::text, 22, '0'), 'acme', 'evt_01k0' || lpad(g::text, 22, '0'), \
             'wh_x', 'ep_x', CASE WHEN g <= 5 THEN 'PENDING' ELSE 'SUCCEEDED' END, 1, \
             CASE WHEN g <= 5 THEN 1 END, 1, 1 FROM generate_series(1, {ROWS}) g"
        ),
        format!(
            "INSERT INTO delivery_attempts (id, tenant_id, delivery_id, attempt_number, endpoint_url, \
             outcome, started_at, duration_ms) \
             SELECT 'att_01k0' || lpad(g::text, 22, '0'), 'acme', 'dlv_01k0' || lpad(g::text, 22, '0'), \
             1, 'http://127.0.0.1:9/', 'SUCCEEDED', 1, 1 FROM generate_series(1, {ROWS}) g"
        ),
    ];
    exec(&db, &fill.join("; ")).await;
    db.close().await.ok();

    let started = Instant::now();
    hookline::db::migrate(&url)
        .await
        .expect("partition the history");
    eprintln!(
        "partitioned {ROWS} events, deliveries and attempts in {:?}",
        started.elapsed()
    );

    let db = Database::connect(&url).await.expect("connect");
    for (table, _) in TABLES {
        let parent = format!(
            "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = '{table}'::regclass"
        );
        assert_eq!(count(&db, &parent).await, 1, "{table} is partitioned");
        let kept = format!("SELECT count(*) FROM ONLY {table}_history");
        assert_eq!(
            count(&db, &kept).await,
            ROWS,
            "{table} kept its rows in place"
        );
    }
    let due = "SELECT count(*) FROM delivery_queue q JOIN deliveries d ON d.id = q.id \
               WHERE d.status = 'PENDING' AND q.due_at <= 1";
    assert_eq!(
        count(&db, due).await,
        5,
        "the open deliveries are queued, still due"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM event_keys").await, 10);
    db.close().await.ok();

    // A key used an hour before the migration still answers with its event.
    let app = TestApp::spawn_on(&url, |c| c.no_worker = true).await;
    let token = app.admin("acme");
    let again = publish_input(
        &app,
        &token,
        json!({
            "type": "offer.created", "data": {}, "idempotencyKey": "key-3"
        }),
    )
    .await;
    assert!(again.duplicate, "the key's event was found");
    assert_eq!(again.event.id, format!("evt_01k0{:022}", 3));
    let fresh = publish(&app, &token, "offer.created", json!({ "n": 1 })).await;
    let db = Database::connect(&url).await.expect("connect");
    // The history partition reaches to the end of the migration's week.
    let placed = format!(
        "SELECT count(*) FROM ONLY events_history WHERE id = '{}'",
        fresh.event.id
    );
    assert_eq!(
        count(&db, &placed).await,
        1,
        "this week's events join the history partition"
    );
    let next_week = span_partition("events", span_start(now_ms() / DAY_MS) + SPAN_DAYS);
    assert!(
        table_exists(&db, &next_week).await,
        "next week has its partition"
    );
}

/// Attempts of `webhook`'s deliveries, counted in the database.
async fn attempts_of(db: &DatabaseConnection, webhook: &str) -> i64 {
    let sql = format!(
        "SELECT count(*) FROM delivery_attempts WHERE delivery_id IN \
         (SELECT id FROM deliveries WHERE webhook_id = '{webhook}') \
         OR delivery_id NOT IN (SELECT id FROM deliveries)"
    );
    count(db, &sql).await
}

/// Removing an endpoint, or deleting its webhook, deletes the attempts of
/// their deliveries with them, on both databases: on PostgreSQL nothing
/// cascades from deliveries to attempts any more (a week is dropped whole),
/// and without the explicit delete the attempts stayed behind.
#[tokio::test]
async fn an_endpoint_or_a_webhook_deleted_leaves_no_attempts_behind() {
    let app = TestApp::spawn().await;
    let token = app.admin("acme");
    let (first, second) = (Receiver::ok().await, Receiver::ok().await);
    let mut input = fast_webhook(&first.url, &["*"], 3);
    input["endpoints"] = json!([{ "url": first.url }, { "url": second.url }]);
    let hook = create_webhook(&app, &token, input).await.webhook.id;
    publish(&app, &token, "offer.created", json!({ "n": 1 })).await;
    first.wait_for(1, Duration::from_secs(10)).await;
    second.wait_for(1, Duration::from_secs(10)).await;
    let db = hookline::db::connect(&app.database_url)
        .await
        .expect("connect")
        .write;
    let recorded = Instant::now();
    while attempts_of(&db, &hook).await < 2 {
        assert!(
            recorded.elapsed() < Duration::from_secs(10),
            "attempts recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let update = "mutation($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) { id } }";
    let input = json!({ "endpoints": [{ "url": second.url }] });
    app.gql
        .ok(&token, update, json!({ "id": hook, "input": input }))
        .await;
    assert_eq!(
        attempts_of(&db, &hook).await,
        1,
        "the removed endpoint's attempt went with it"
    );

    let delete = "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }";
    app.gql.ok(&token, delete, json!({ "id": hook })).await;
    assert_eq!(
        attempts_of(&db, &hook).await,
        0,
        "the webhook's attempts went with it"
    );
}
