//! The events' INSERT, numbered in commit order on SQLite.

use entity::event;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, Value,
};

use crate::db::{chunks_by_size, statement, tuples};

/// Rows per INSERT at most: keeps every statement under SQLite's and
/// PostgreSQL's bound-parameter limits (and see `db::STATEMENT_BYTES`).
const INSERT_CHUNK: usize = 500;

/// Inserts events. A unique violation here is an idempotency key another
/// commit is inserting at the same moment; the caller classifies it.
pub(crate) async fn insert_events(
    txn: &DatabaseTransaction,
    events: &[event::Model],
) -> Result<(), DbErr> {
    if events.is_empty() {
        return Ok(());
    }
    // PostgreSQL stamps the transaction id itself (the column's default).
    let commit_seq = match txn.get_database_backend() {
        DbBackend::Sqlite => Set(next_commit_seq(txn).await?),
        _ => NotSet,
    };
    for chunk in chunks_by_size(events, INSERT_CHUNK, |e| {
        e.body.len() + e.id.as_str().len() * 2 + 96
    }) {
        let rows = chunk.iter().cloned().map(|m| event::ActiveModel {
            id: Set(m.id),
            tenant_id: Set(m.tenant_id),
            event_type: Set(m.event_type),
            occurred_at: Set(m.occurred_at),
            body: Set(m.body),
            labels: Set(m.labels),
            idempotency_key: Set(m.idempotency_key),
            created_at: Set(m.created_at),
            commit_seq: commit_seq.clone(),
            trace_context: Set(m.trace_context),
        });
        event::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
    }
    insert_keys(txn, events).await
}

/// The idempotency keys of `events`, each held by its event from now on.
async fn insert_keys(txn: &DatabaseTransaction, events: &[event::Model]) -> Result<(), DbErr> {
    let keyed: Vec<&event::Model> = events
        .iter()
        .filter(|e| e.idempotency_key.is_some())
        .collect();
    for chunk in keyed.chunks(INSERT_CHUNK) {
        let sql = format!(
            "INSERT INTO event_keys (tenant_id, idempotency_key, event_id, created_at) VALUES {}",
            tuples(chunk.len(), 4, 1)
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 4);
        for e in chunk {
            values.extend([
                e.tenant_id.clone().into(),
                e.idempotency_key.clone().into(),
                e.id.as_str().into(),
                e.created_at.into(),
            ]);
        }
        txn.execute_raw(statement(txn.get_database_backend(), &sql, values))
            .await?;
    }
    Ok(())
}

/// The next commit position on SQLite, where write transactions run one at a
/// time, so numbering them as they run numbers them in commit order.
async fn next_commit_seq(txn: &DatabaseTransaction) -> Result<i64, DbErr> {
    let row = txn
        .query_one_raw(statement(
            DbBackend::Sqlite,
            "INSERT INTO counters (name, value) VALUES ('events', 1) \
             ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
            Vec::new(),
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("the events counter returned no row".into()))?;
    row.try_get::<i64>("", "value")
}

/// PostgreSQL: [`insert_events`] as one part of a larger statement. The SQL
/// inserts the rows of the JSON array `$param` (made by [`events_json`])
/// whose tenant `keep` (an SQL condition on `e.tenant_id`) accepts; it
/// returns nothing (`commit_seq` is the column's default, as above).
pub(super) fn insert_events_json(param: usize, keep: &str) -> String {
    format!(
        "INSERT INTO events (id, tenant_id, event_type, occurred_at, body, labels, \
         idempotency_key, created_at, trace_context) \
         SELECT e.id, e.tenant_id, e.event_type, e.occurred_at, e.body, e.labels, NULL, \
         e.created_at, e.trace_context \
         FROM json_to_recordset(${param}::json) AS e(id text, tenant_id text, event_type text, \
         occurred_at bigint, body text, labels jsonb, created_at bigint, trace_context text) \
         WHERE {keep}"
    )
}

/// SQLite: [`insert_events`] as statements of a larger text (see
/// `db::script`): the commit position taken (when any row is kept), then
/// the rows of the JSON
/// array `$param` (made by [`events_json`]) whose tenant `keep` (an SQL
/// condition on `e.value ->> 'tenant_id'`) accepts inserted with it.
pub(super) fn insert_events_sqlite(param: usize, keep: &str) -> String {
    format!(
        "INSERT INTO counters (name, value) SELECT 'events', 1 WHERE EXISTS \
           (SELECT 1 FROM jsonb_each(${param}) AS e WHERE {keep}) \
           ON CONFLICT (name) DO UPDATE SET value = counters.value + 1; \
         INSERT INTO events (id, tenant_id, event_type, occurred_at, body, labels, \
           idempotency_key, created_at, commit_seq, trace_context) \
         SELECT e.value ->> 'id', e.value ->> 'tenant_id', e.value ->> 'event_type', \
           e.value ->> 'occurred_at', e.value ->> 'body', e.value -> 'labels', NULL, \
           e.value ->> 'created_at', (SELECT value FROM counters WHERE name = 'events'), \
           e.value ->> 'trace_context' \
         FROM jsonb_each(${param}) AS e WHERE {keep};"
    )
}

/// Events without idempotency keys as the JSON array [`insert_events_json`]
/// inserts.
pub(super) fn events_json(events: &[event::Model]) -> Result<String, DbErr> {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        id: &'a str,
        tenant_id: &'a str,
        event_type: &'a str,
        occurred_at: i64,
        body: &'a str,
        labels: &'a serde_json::Value,
        created_at: i64,
        trace_context: Option<&'a str>,
    }
    let rows: Vec<Row<'_>> = events
        .iter()
        .map(|e| Row {
            id: e.id.as_str(),
            tenant_id: &e.tenant_id,
            event_type: &e.event_type,
            occurred_at: e.occurred_at,
            body: &e.body,
            labels: &e.labels,
            created_at: e.created_at,
            trace_context: e.trace_context.as_deref(),
        })
        .collect();
    serde_json::to_string(&rows).map_err(|err| DbErr::Custom(err.to_string()))
}
