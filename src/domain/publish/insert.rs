//! The events' INSERT, numbered in commit order on SQLite.

use entity::event;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
};

use crate::db::{chunks_by_size, statement};

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
