//! A batch of successful attempts recorded by ONE statement (PostgreSQL)
//! or one trip (SQLite).
//!
//! Recorded in a transaction, a batch costs five statements and round trips:
//! BEGIN, the attempts' INSERT, their deliveries' settlement, the webhooks'
//! `lastSentAt`, their endpoints' health, COMMIT. An endpoint that was
//! reported failing is left to the transactional way, which announces its
//! recovery. When every record of a batch is a successful
//! attempt (the common case: no failure streak to start or judge, nothing
//! to disable, release or cancel) and its rows fit `db::STATEMENT_BYTES`,
//! one statement makes all three writes. Its text never changes, so the
//! connection keeps it prepared. Anything else is recorded the
//! transactional way.
//!
//! On SQLite the same writes are statements of one text, run as a
//! transaction in one hand-off to the connection's thread (`db::script`).

use std::{collections::HashMap, sync::LazyLock};

use entity::delivery_attempt::AttemptOutcome;
use sea_orm::{DatabaseConnection, DbBackend, DbErr};

use super::{AttemptRecord, Record, settlement};
use crate::{
    db::{Kept, STATEMENT_BYTES, script, statement},
    domain::queue,
};

static SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH new_attempts AS (\
           INSERT INTO delivery_attempts (id, tenant_id, delivery_id, attempt_number, \
             endpoint_url, outcome, started_at, duration_ms, response_status, response_body, \
             error_message, next_attempt_at, instance_id, endpoint_id) \
           SELECT a.id, a.tenant_id, a.delivery_id, a.attempt_number, a.endpoint_url, \
             'SUCCEEDED', a.started_at, a.duration_ms, a.response_status, a.response_body, \
             a.error_message, a.next_attempt_at, a.instance_id, a.endpoint_id \
           FROM json_to_recordset($2::json) AS a(id text, tenant_id text, delivery_id text, \
             attempt_number int, endpoint_url text, started_at bigint, duration_ms int, \
             response_status int, response_body text, error_message text, \
             next_attempt_at bigint, instance_id text, endpoint_id text) \
           ON CONFLICT (id) DO NOTHING), \
         {}, \
         sent AS (\
           UPDATE webhooks SET last_sent_at = CASE \
             WHEN last_sent_at IS NULL OR last_sent_at < w.sent_at THEN w.sent_at \
             ELSE last_sent_at END \
           FROM json_to_recordset($4::json) AS w(id text, sent_at bigint) \
           WHERE webhooks.id = ANY(string_to_array($8, ',')) AND webhooks.id = w.id), \
         healthy AS (\
           UPDATE endpoints SET failing_since = NULL, consecutive_failures = 0, \
             last_success_at = CASE \
               WHEN last_success_at IS NULL OR last_success_at < e.sent_at THEN e.sent_at \
               ELSE last_success_at END \
           FROM json_to_recordset($5::json) AS e(id text, sent_at bigint) \
           WHERE endpoints.id = ANY(string_to_array($9, ',')) AND endpoints.id = e.id \
             AND endpoints.consecutive_failures < $6) \
         SELECT id FROM endpoints \
         WHERE id = ANY(string_to_array($9, ',')) AND consecutive_failures >= $6",
        queue::settle_json(1, 3, 7)
    )
});

/// SQLite's form of [`SQL`]: the same values, `$7` to `$9` unused.
static SQLITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO delivery_attempts (id, tenant_id, delivery_id, attempt_number, \
           endpoint_url, outcome, started_at, duration_ms, response_status, response_body, \
           error_message, next_attempt_at, instance_id, endpoint_id) \
         SELECT a.value ->> 'id', a.value ->> 'tenant_id', a.value ->> 'delivery_id', \
           a.value ->> 'attempt_number', a.value ->> 'endpoint_url', 'SUCCEEDED', \
           a.value ->> 'started_at', a.value ->> 'duration_ms', a.value ->> 'response_status', \
           a.value ->> 'response_body', a.value ->> 'error_message', \
           a.value ->> 'next_attempt_at', a.value ->> 'instance_id', a.value ->> 'endpoint_id' \
         FROM jsonb_each($2) AS a WHERE true ON CONFLICT (id) DO NOTHING; \
         {} \
         UPDATE webhooks SET last_sent_at = MAX(COALESCE(last_sent_at, 0), w.value ->> 'sent_at') \
         FROM jsonb_each($4) AS w WHERE webhooks.id = w.value ->> 'id'; \
         UPDATE endpoints SET failing_since = NULL, consecutive_failures = 0, \
           last_success_at = MAX(COALESCE(last_success_at, 0), e.value ->> 'sent_at') \
         FROM jsonb_each($5) AS e \
         WHERE endpoints.id = e.value ->> 'id' AND endpoints.consecutive_failures < $6; \
         SELECT id FROM endpoints \
         WHERE id IN (SELECT e.value ->> 'id' FROM jsonb_each($5) AS e) \
           AND consecutive_failures >= $6;",
        queue::dequeue_sqlite(1, 3)
    )
});

/// What one attempt weighs in the statement besides its response body.
const ATTEMPT_JSON_BYTES: usize = 400;

/// Most attempts a batch may hold for SQLite to record it in one trip: its
/// rows go through JSON there, which costs more per row than bound values
/// (`publish::one_statement` says how much); a small batch (a moderate
/// load) saves its hand-offs to the connection's thread, a large one is
/// cheaper the transactional way. Not measured apart from the publish's
/// trip: chosen to take the batches a steady 500 events a second to one
/// endpoint makes (5 to 7 attempts, gathered for 10 ms) with room to spare.
const SQLITE_MOST_ATTEMPTS: usize = 16;

/// The batch's attempts, when one statement can record it: every record a
/// successful attempt, their rows within the bound (on SQLite, at most
/// [`SQLITE_MOST_ATTEMPTS`] of them). The bound also keeps large batches on
/// PostgreSQL the transactional way, which is cheaper for them: with every
/// batch in one statement (its JSON read in several places and joined on
/// the planner's guess of 100 rows), one event per request to five
/// endpoints fell from about 9 000 to 5 000 deliveries a second and
/// PostgreSQL's CPU per event doubled.
pub(super) fn suits<'a>(
    db: &DatabaseConnection,
    batch: &'a [Record],
) -> Option<Vec<&'a AttemptRecord>> {
    if db.get_database_backend() == DbBackend::Sqlite && batch.len() > SQLITE_MOST_ATTEMPTS {
        return None;
    }
    let mut bytes = 0;
    let mut attempts = Vec::with_capacity(batch.len());
    for record in batch {
        let Record::Attempt(attempt) = record else {
            return None;
        };
        let a = &attempt.live.attempt;
        // SQLite's settlement only takes deliveries out of the queue
        // (`queue::dequeue_sqlite`): a success always does.
        if a.outcome != AttemptOutcome::Succeeded
            || attempt.delivery_status.is_open()
            || attempt.disable_endpoint.is_some()
        {
            return None;
        }
        bytes += ATTEMPT_JSON_BYTES
            + queue::SETTLEMENT_JSON_BYTES
            + a.endpoint_url.len()
            + a.response_body.as_ref().map_or(0, String::len)
            + a.error_message.as_ref().map_or(0, String::len);
        attempts.push(attempt.as_ref());
    }
    (bytes <= STATEMENT_BYTES).then_some(attempts)
}

/// Records `attempts` (as [`suits`] found them) in one statement (on
/// PostgreSQL planned for its values each time, `queue::settle_json` says
/// why; on SQLite one script). Endpoints
/// that had failed `failing_after` times in a row or more are left as they
/// were and returned: their recovery is for `bookkeeping` to record and
/// announce.
pub(super) async fn write(
    db: &DatabaseConnection,
    kept: &Kept,
    attempts: &[&AttemptRecord],
    failing_after: u32,
    now: i64,
) -> Result<Vec<String>, DbErr> {
    #[derive(serde::Serialize)]
    struct Attempt<'a> {
        id: &'a str,
        tenant_id: &'a str,
        delivery_id: &'a str,
        attempt_number: i32,
        endpoint_url: &'a str,
        started_at: i64,
        duration_ms: i32,
        response_status: Option<i32>,
        response_body: Option<&'a str>,
        error_message: Option<&'a str>,
        next_attempt_at: Option<i64>,
        instance_id: Option<&'a str>,
        endpoint_id: &'a str,
    }
    let rows: Vec<Attempt<'_>> = attempts
        .iter()
        .map(|record| {
            let a = &record.live.attempt;
            Attempt {
                id: a.id.as_str(),
                tenant_id: &a.tenant_id,
                delivery_id: a.delivery_id.as_str(),
                attempt_number: a.attempt_number,
                endpoint_url: &a.endpoint_url,
                started_at: a.started_at,
                duration_ms: a.duration_ms,
                response_status: a.response_status,
                response_body: a.response_body.as_deref(),
                error_message: a.error_message.as_deref(),
                next_attempt_at: a.next_attempt_at,
                instance_id: a.instance_id.as_ref().map(|i| i.as_str()),
                endpoint_id: record.live.endpoint_id.as_str(),
            }
        })
        .collect();
    let (webhooks, endpoints) = latest_sends(attempts);
    let settlements: Vec<_> = attempts.iter().map(|r| settlement(r)).collect();
    let json = |value: Result<String, serde_json::Error>| {
        value.map_err(|err| DbErr::Custom(err.to_string()))
    };
    let values = vec![
        now.into(),
        json(serde_json::to_string(&rows))?.into(),
        queue::settle_rows(&settlements)?.into(),
        json(serde_json::to_string(&webhooks))?.into(),
        json(serde_json::to_string(&endpoints))?.into(),
        i32::try_from(failing_after).unwrap_or(i32::MAX).into(),
        queue::id_list(settlements.iter().map(|s| s.delivery_id.as_str())).into(),
        queue::id_list(webhooks.iter().map(|w| w.id)).into(),
        queue::id_list(endpoints.iter().map(|e| e.id)).into(),
    ];
    match db.get_database_backend() {
        DbBackend::Sqlite => script::transaction(db, &SQLITE, values).await?,
        _ => {
            kept.query_all(db, statement(DbBackend::Postgres, &SQL, values))
                .await?
        }
    }
    .iter()
    .map(|row| row.try_get_by_index(0))
    .collect()
}

#[derive(serde::Serialize)]
struct Sent<'a> {
    id: &'a str,
    sent_at: i64,
}

/// The latest attempt per webhook, and per endpoint.
fn latest_sends<'a>(attempts: &[&'a AttemptRecord]) -> (Vec<Sent<'a>>, Vec<Sent<'a>>) {
    let mut webhooks: HashMap<&str, i64> = HashMap::new();
    let mut endpoints: HashMap<&str, i64> = HashMap::new();
    for record in attempts {
        let at = record.live.attempt.started_at;
        for (latest, id) in [
            (&mut webhooks, record.live.webhook_id.as_str()),
            (&mut endpoints, record.live.endpoint_id.as_str()),
        ] {
            let sent_at = latest.entry(id).or_insert(at);
            *sent_at = Ord::max(*sent_at, at);
        }
    }
    let sent = |latest: HashMap<&'a str, i64>| {
        latest
            .into_iter()
            .map(|(id, sent_at)| Sent { id, sent_at })
            .collect()
    };
    (sent(webhooks), sent(endpoints))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

    use super::*;

    /// A fresh schema with hookline's tables in the database named by
    /// `HOOKLINE_TEST_DATABASE_URL`, on one connection; `None` without it.
    async fn fresh_schema() -> Option<DatabaseConnection> {
        let base = std::env::var("HOOKLINE_TEST_DATABASE_URL").ok()?;
        let schema = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
        let admin = Database::connect(&base).await.expect("connect");
        admin
            .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("schema");
        admin.close().await.ok();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options[search_path]={schema}");
        crate::db::migrate(&url).await.expect("migrate");
        let mut options = ConnectOptions::new(url);
        options.max_connections(1);
        Some(Database::connect(options).await.expect("connect"))
    }

    /// The plan PostgreSQL makes for the statement with `args` (SQL
    /// literals, one per parameter) on a connection that has not run it.
    async fn plan(db: &DatabaseConnection, types: &str, args: &str) -> String {
        db.execute_unprepared(&format!("PREPARE batch({types}) AS {}", *SQL))
            .await
            .expect("prepare");
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("EXPLAIN EXECUTE batch({args})"),
            ))
            .await
            .expect("explain");
        let lines: Vec<String> = rows
            .iter()
            .map(|row| row.try_get_by_index(0).expect("plan line"))
            .collect();
        lines.join("\n")
    }

    /// A migrated SQLite database (in `dir`) with one webhook, its two
    /// endpoints (the second failing), and two deliveries claimed with
    /// tokens 7 and 8.
    async fn sqlite_with_two_claims(dir: &std::path::Path) -> DatabaseConnection {
        let url = format!("sqlite://{}?mode=rwc", dir.join("r.db").display());
        crate::db::migrate(&url).await.expect("migrate");
        let db = Database::connect(&url).await.expect("connect");
        db.execute_unprepared(
            "INSERT INTO webhooks (id, tenant_id, name, description, status, event_types, \
               created_by, secret, max_attempts, initial_interval_ms, max_interval_ms, \
               timeout_ms, created_at, updated_at, last_sent_at) \
             VALUES ('wh_1', 'acme', 'w', '', 'ACTIVE', '[]', 'x', 's', 5, 1000, 60000, 5000, \
               0, 0, 50); \
             INSERT INTO endpoints (id, webhook_id, tenant_id, url, headers, position, \
               created_at, consecutive_failures, failing_since) \
             VALUES ('ep_1', 'wh_1', 'acme', 'http://127.0.0.1:9/', '{}', 0, 0, 2, 10), \
                    ('ep_2', 'wh_1', 'acme', 'http://127.0.0.1:9/2', '{}', 1, 0, 5, 10); \
             INSERT INTO events (id, tenant_id, event_type, occurred_at, body, labels, \
               created_at) VALUES ('evt_1', 'acme', 't', 0, '{}', '{}', 0); \
             INSERT INTO deliveries (id, tenant_id, event_id, webhook_id, endpoint_id, status, \
               attempt_count, created_at, updated_at) \
             VALUES ('dlv_1', 'acme', 'evt_1', 'wh_1', 'ep_1', 'PENDING', 0, 0, 0), \
                    ('dlv_2', 'acme', 'evt_1', 'wh_1', 'ep_1', 'PENDING', 0, 0, 0); \
             INSERT INTO delivery_queue (id, tenant_id, event_id, webhook_id, endpoint_id, \
               attempt_count, due_at, claim_token, claimed_by) \
             VALUES ('dlv_1', 'acme', 'evt_1', 'wh_1', 'ep_1', 0, 1000, 7, 'i'), \
                    ('dlv_2', 'acme', 'evt_1', 'wh_1', 'ep_1', 0, 1000, 8, 'j');",
        )
        .await
        .expect("fixtures");
        db
    }

    /// The statement's values for successes of both deliveries, as claimed
    /// with token 7, at 100.
    fn successes_of_both() -> Vec<sea_orm::Value> {
        let attempt = |id: &str, delivery: &str| {
            serde_json::json!({
                "id": id, "tenant_id": "acme", "delivery_id": delivery, "attempt_number": 1,
                "endpoint_url": "http://127.0.0.1:9/", "started_at": 100, "duration_ms": 3,
                "response_status": 200, "response_body": "ok", "error_message": null,
                "next_attempt_at": null, "instance_id": "i", "endpoint_id": "ep_1",
            })
        };
        let settle = |delivery: &str| {
            serde_json::json!({
                "id": delivery, "claim_token": 7, "status": "SUCCEEDED", "attempt_number": 1,
                "next_attempt_at": null, "attempted_at": 100, "response_status": 200,
            })
        };
        vec![
            200_i64.into(),
            serde_json::json!([attempt("att_1", "dlv_1"), attempt("att_2", "dlv_2")])
                .to_string()
                .into(),
            serde_json::json!([settle("dlv_1"), settle("dlv_2")])
                .to_string()
                .into(),
            r#"[{"id":"wh_1","sent_at":100}]"#.into(),
            r#"[{"id":"ep_1","sent_at":100},{"id":"ep_2","sent_at":100}]"#.into(),
            5_i32.into(),
            "dlv_1,dlv_2".into(),
            "wh_1".into(),
            "ep_1,ep_2".into(),
        ]
    }

    /// SQLite: the script records a batch of successes as the transactional
    /// way does. Two deliveries to one endpoint, claimed with token 7; the
    /// second's lease ran out and another worker holds it now (token 8), so
    /// only the first settles; the endpoint's streak is cleared and the
    /// webhook's `lastSentAt` moves forward; a second endpoint that had failed
    /// five times is left to the transactional way and named.
    #[tokio::test]
    async fn sqlite_records_a_batch_of_successes_in_one_trip() {
        let dir = tempfile::tempdir().expect("a directory");
        let db = sqlite_with_two_claims(dir.path()).await;
        let failing = crate::db::script::transaction(&db, &SQLITE, successes_of_both())
            .await
            .expect("recorded");
        let failing: Vec<String> = failing
            .iter()
            .map(|row| row.try_get_by_index(0).expect("an id"))
            .collect();
        assert_eq!(failing, ["ep_2"], "the endpoint reported failing is named");
        let one = |sql: &str| {
            let db = db.clone();
            let sql = sql.to_owned();
            async move {
                let row = db
                    .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
                    .await
                    .expect("read")
                    .expect("a row");
                row.try_get_by_index::<String>(0).expect("text")
            }
        };
        let read = "SELECT status || ' ' || attempt_count || ' ' || \
                    COALESCE(last_response_status, '-') || ' ' || updated_at FROM deliveries";
        assert_eq!(
            one(&format!("{read} WHERE id = 'dlv_1'")).await,
            "SUCCEEDED 1 200 200"
        );
        assert_eq!(
            one(&format!("{read} WHERE id = 'dlv_2'")).await,
            "PENDING 0 - 0"
        );
        assert_eq!(
            one("SELECT group_concat(id) FROM delivery_queue").await,
            "dlv_2",
            "the other worker's claim stays queued"
        );
        assert_eq!(
            one("SELECT group_concat(id || ':' || outcome) FROM delivery_attempts").await,
            "att_1:SUCCEEDED,att_2:SUCCEEDED",
            "every attempt made is kept, as the transactional way keeps it"
        );
        assert_eq!(
            one(
                "SELECT group_concat(id || ':' || consecutive_failures || ':' || \
                 COALESCE(failing_since, '-') || ':' || COALESCE(last_success_at, '-')) \
                 FROM endpoints ORDER BY id"
            )
            .await,
            "ep_1:0:-:100,ep_2:5:10:-"
        );
        assert_eq!(
            one("SELECT CAST(last_sent_at AS TEXT) FROM webhooks").await,
            "100"
        );
    }

    /// A batch of successes settles its deliveries by their key, also while
    /// the table is too young for the planner to have counted its rows. It
    /// was joined on the batch's JSON alone, which the planner takes for a
    /// hundred rows: under some tens of thousands of deliveries it read the
    /// table whole for every batch.
    #[tokio::test]
    async fn a_batch_finds_its_deliveries_by_key_in_a_young_table() {
        let Some(db) = fresh_schema().await else {
            eprintln!("skipped: needs PostgreSQL (HOOKLINE_TEST_DATABASE_URL)");
            return;
        };
        db.execute_unprepared(
            "INSERT INTO deliveries (id, tenant_id, event_id, webhook_id, endpoint_id, status, \
               attempt_count, created_at, updated_at) \
             SELECT 'dlv_' || g, 'acme', 'evt_' || g, 'wh_1', 'ep_1', 'SUCCEEDED', 1, 0, 0 \
             FROM generate_series(1, 20000) AS g",
        )
        .await
        .expect("fill deliveries");
        let settle = r#"[{"id":"dlv_7","claim_token":1,"status":"SUCCEEDED","attempt_number":1,"next_attempt_at":null,"attempted_at":1,"response_status":200}]"#;
        let plan = plan(
            &db,
            "bigint, text, text, text, text, int, text, text, text",
            &format!("1, '[]', '{settle}', '[]', '[]', 5, 'dlv_7', 'wh_1', 'ep_1'"),
        )
        .await;
        // Ids of no week's shape: the rows are in the default partition (the
        // week partitions are empty, and scanning those costs nothing).
        assert!(plan.contains("deliveries_default_pkey"), "{plan}");
        assert!(!plan.contains("Seq Scan on deliveries_default"), "{plan}");
    }
}
