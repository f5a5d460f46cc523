//! Transitions whose rows come as one JSON array, so that a statement's
//! text is the same whatever the number of rows and a transition can be one
//! part of a larger statement. PostgreSQL's forms (`json_to_recordset`) are
//! kept prepared by the connection; SQLite's forms of the enqueue and
//! of a settlement out of the queue read the same arrays, for the publish's
//! and the recorder's one trip (`db::script`), with `jsonb_each`: its rows
//! stay in SQLite's binary form, so reading a field of a row neither renders
//! the row as text nor parses that text again.

use entity::delivery;
use sea_orm::DbErr;

use super::{Holding, Settlement};

/// PostgreSQL: [`super::enqueue`] as part of a larger statement: two
/// common table expressions (`new_deliveries`, `queued`) for its `WITH`
/// list. They insert, and queue, the rows of the JSON array `$param` (made
/// by [`enqueue_json_rows`]) whose tenant `keep` (an SQL condition on
/// `d.tenant_id`) accepts.
pub fn enqueue_json(param: usize, keep: &str) -> String {
    let rows = format!(
        "FROM json_to_recordset(${param}::json) AS d(id text, tenant_id text, event_id text, \
         webhook_id text, endpoint_id text, status text, attempt_count int, \
         next_attempt_at bigint, due_at bigint, claim_token bigint, claimed_by text, \
         created_at bigint, updated_at bigint, ordering_key text) \
         WHERE {keep}"
    );
    format!(
        "new_deliveries AS (INSERT INTO deliveries (id, tenant_id, event_id, webhook_id, \
           endpoint_id, status, attempt_count, next_attempt_at, created_at, updated_at, \
           ordering_key) \
         SELECT d.id, d.tenant_id, d.event_id, d.webhook_id, d.endpoint_id, d.status, \
           d.attempt_count, d.next_attempt_at, d.created_at, d.updated_at, d.ordering_key \
         {rows}), \
         queued AS (INSERT INTO delivery_queue ({}) \
         SELECT d.id, d.tenant_id, d.event_id, d.webhook_id, d.endpoint_id, d.attempt_count, \
           d.due_at, d.claim_token, d.claimed_by, d.ordering_key \
         {rows})",
        super::QUEUE_COLUMNS
    )
}

/// SQLite: [`super::enqueue`] as two statements of a larger text (see
/// `db::script`): they insert, and queue, the rows of the JSON array
/// `$param` (made by [`enqueue_json_rows`]) whose tenant `keep` (an SQL
/// condition on `d.value ->> 'tenant_id'`) accepts.
pub fn enqueue_sqlite(param: usize, keep: &str) -> String {
    let rows = format!("FROM jsonb_each(${param}) AS d WHERE {keep}");
    format!(
        "INSERT INTO deliveries (id, tenant_id, event_id, webhook_id, endpoint_id, status, \
           attempt_count, next_attempt_at, created_at, updated_at, ordering_key) \
         SELECT d.value ->> 'id', d.value ->> 'tenant_id', d.value ->> 'event_id', \
           d.value ->> 'webhook_id', d.value ->> 'endpoint_id', d.value ->> 'status', \
           d.value ->> 'attempt_count', d.value ->> 'next_attempt_at', \
           d.value ->> 'created_at', d.value ->> 'updated_at', d.value ->> 'ordering_key' \
         {rows}; \
         INSERT INTO delivery_queue ({}) \
         SELECT d.value ->> 'id', d.value ->> 'tenant_id', d.value ->> 'event_id', \
           d.value ->> 'webhook_id', d.value ->> 'endpoint_id', d.value ->> 'attempt_count', \
           d.value ->> 'due_at', d.value ->> 'claim_token', d.value ->> 'claimed_by', \
           d.value ->> 'ordering_key' \
         {rows};",
        super::QUEUE_COLUMNS
    )
}

/// New deliveries (made by [`super::new_delivery`]), those `holding` names
/// held by its claim, as the JSON array [`enqueue_json`] inserts.
pub fn enqueue_json_rows(
    deliveries: &[delivery::Model],
    holding: Option<&Holding<'_>>,
) -> Result<String, DbErr> {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        id: &'a str,
        tenant_id: &'a str,
        event_id: &'a str,
        webhook_id: &'a str,
        endpoint_id: &'a str,
        status: String,
        attempt_count: i32,
        next_attempt_at: Option<i64>,
        due_at: Option<i64>,
        claim_token: Option<i64>,
        claimed_by: Option<&'a str>,
        created_at: i64,
        updated_at: i64,
        ordering_key: Option<&'a str>,
    }
    let rows: Vec<Row<'_>> = deliveries
        .iter()
        .map(|d| {
            let (due_at, claim_token, claimed_by) = Holding::claim_of(holding, d);
            Row {
                id: d.id.as_str(),
                tenant_id: &d.tenant_id,
                event_id: d.event_id.as_str(),
                webhook_id: d.webhook_id.as_str(),
                endpoint_id: d.endpoint_id.as_str(),
                status: sea_orm::ActiveEnum::to_value(&d.status),
                attempt_count: d.attempt_count,
                next_attempt_at: d.next_attempt_at,
                due_at,
                claim_token,
                claimed_by,
                created_at: d.created_at,
                updated_at: d.updated_at,
                ordering_key: d.ordering_key.as_deref(),
            }
        })
        .collect();
    serde_json::to_string(&rows).map_err(|err| DbErr::Custom(err.to_string()))
}

/// PostgreSQL: [`super::settle`] as part of a larger statement: common table
/// expressions for its `WITH` list, the last named `settled`. `$now` is the
/// time, `$rows` the JSON array [`settle_rows`] makes, `$ids` the same
/// deliveries' ids joined by commas ([`id_list`]). The queue rows whose
/// claim token matches leave the queue (or, retried, stay unclaimed);
/// their deliveries get the outcome.
///
/// The list of ids is there for the planner. It takes any set-returning
/// function for a hundred rows, and a hundred lookups cost more than reading
/// a table of up to some ten thousand rows whole: joined on the JSON alone,
/// every batch read the whole table while it was young (1.8 ms at 7 500
/// rows, for a batch of 7). It takes an `= ANY` of an array for ten rows,
/// and looks those up by the primary key.
pub fn settle_json(now: usize, rows: usize, ids: usize) -> String {
    let v = format!(
        "json_to_recordset(${rows}::json) AS v(id text, claim_token bigint, status text, \
         attempt_number int, next_attempt_at bigint, attempted_at bigint, response_status int)"
    );
    let mine = format!(
        "q.id = ANY(string_to_array(${ids}, ',')) AND q.id = v.id AND q.claim_token = v.claim_token"
    );
    format!(
        "dequeued AS (DELETE FROM delivery_queue q USING {v} \
           WHERE {mine} AND v.status NOT IN ('PENDING', 'RETRYING') RETURNING q.id), \
         requeued AS (UPDATE delivery_queue q SET due_at = COALESCE(v.next_attempt_at, ${now}), \
             attempt_count = v.attempt_number, claim_token = NULL, claimed_by = NULL \
           FROM {v} WHERE {mine} AND v.status IN ('PENDING', 'RETRYING') RETURNING q.id), \
         settled AS (UPDATE deliveries SET status = v.status, attempt_count = v.attempt_number, \
             next_attempt_at = v.next_attempt_at, last_attempt_at = v.attempted_at, \
             last_response_status = v.response_status, updated_at = ${now} \
           FROM {v} \
           WHERE deliveries.id = ANY(string_to_array(${ids}, ',')) AND deliveries.id = v.id \
             AND v.id IN (SELECT id FROM dequeued UNION ALL SELECT id FROM requeued))"
    )
}

/// SQLite: settlements that take their deliveries out of the queue (a
/// success, a failure for good; not a retry), as statements of a larger
/// text (see `db::script`), reading the same JSON array `$rows` as
/// [`settle_json`]. A delivery whose queue row holds another claim token
/// (its lease ran out and another worker took it) is left as it is.
pub fn dequeue_sqlite(now: usize, rows: usize) -> String {
    format!(
        "UPDATE deliveries SET status = v.value ->> 'status', \
           attempt_count = v.value ->> 'attempt_number', \
           next_attempt_at = v.value ->> 'next_attempt_at', \
           last_attempt_at = v.value ->> 'attempted_at', \
           last_response_status = v.value ->> 'response_status', updated_at = ${now} \
         FROM jsonb_each(${rows}) AS v \
         WHERE deliveries.id = v.value ->> 'id' \
           AND EXISTS (SELECT 1 FROM delivery_queue q \
                       WHERE q.id = deliveries.id AND q.claim_token = v.value ->> 'claim_token'); \
         DELETE FROM delivery_queue \
         WHERE (id, claim_token) IN \
           (SELECT v.value ->> 'id', v.value ->> 'claim_token' FROM jsonb_each(${rows}) AS v);"
    )
}

/// Ids joined by commas, for `= ANY(string_to_array($n, ','))` (an id has
/// no comma).
pub fn id_list<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut list = String::new();
    for id in ids {
        if !list.is_empty() {
            list.push(',');
        }
        list.push_str(id);
    }
    list
}

/// Settlements as the JSON array [`settle_json`] reads.
pub fn settle_rows(settlements: &[Settlement<'_>]) -> Result<String, DbErr> {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        id: &'a str,
        claim_token: i64,
        status: String,
        attempt_number: i32,
        next_attempt_at: Option<i64>,
        attempted_at: i64,
        response_status: Option<i32>,
    }
    let rows: Vec<Row<'_>> = settlements
        .iter()
        .map(|s| Row {
            id: s.delivery_id.as_str(),
            claim_token: s.claim_token,
            status: sea_orm::ActiveEnum::to_value(&s.status),
            attempt_number: s.attempt_number,
            next_attempt_at: s.next_attempt_at,
            attempted_at: s.attempted_at,
            response_status: s.response_status,
        })
        .collect();
    serde_json::to_string(&rows).map_err(|err| DbErr::Custom(err.to_string()))
}

/// What one settlement weighs in [`settle_json`]'s JSON.
pub const SETTLEMENT_JSON_BYTES: usize = 200;
