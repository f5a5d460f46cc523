//! Transitions out of a claim: an attempt's outcome settled, a claim handed
//! back, a claimed delivery cancelled. Each matches the claim token on the
//! queue row first and writes the delivery only for the rows it matched, so
//! a claim that ran out and was taken by someone else changes nothing.

use std::collections::{HashMap, HashSet};

use entity::delivery::DeliveryStatus;
use sea_orm::{ConnectionTrait, DbErr, Value};

use super::returned_ids;
use crate::{
    db::{chunks_by_size, placeholders, statement, tuples},
    ids::DeliveryId,
};

/// What an attempt decided for its delivery.
#[derive(Clone, Debug)]
pub struct Settlement<'a> {
    pub delivery_id: &'a DeliveryId,
    pub claim_token: i64,
    pub status: DeliveryStatus,
    pub attempt_number: i32,
    /// Set when the delivery is retried.
    pub next_attempt_at: Option<i64>,
    pub attempted_at: i64,
    pub response_status: Option<i32>,
}

/// Records each attempt's outcome: a settled delivery leaves the queue, a
/// retried one stays queued for its next attempt, unclaimed; then the
/// deliveries whose claim still held get their status. Three statements
/// per chunk at most, inside the caller's transaction.
///
/// Statements are driven by primary keys alone (`VALUES` joined on id). A
/// condition the planner could serve from another index let PostgreSQL,
/// right after a burst, hash every open delivery to settle a hundred.
/// SQLite and PostgreSQL both name the columns of a VALUES list column1,
/// column2, ...
pub async fn settle<C: ConnectionTrait>(
    db: &C,
    settlements: &[Settlement<'_>],
    now: i64,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    for chunk in chunks_by_size(settlements, 500, |_| 120) {
        let (open, closed): (Vec<&Settlement>, Vec<&Settlement>) =
            chunk.iter().partition(|s| s.status.is_open());
        let mut matched: Vec<String> = Vec::with_capacity(chunk.len());
        if !closed.is_empty() {
            let values: Vec<Value> = closed
                .iter()
                .flat_map(|s| [s.delivery_id.as_str().into(), s.claim_token.into()])
                .collect();
            let sql = format!(
                "DELETE FROM delivery_queue WHERE (id, claim_token) IN (VALUES {}) RETURNING id",
                tuples(closed.len(), 2, 1)
            );
            matched.extend(returned_ids(db, statement(backend, &sql, values)).await?);
        }
        if !open.is_empty() {
            let values: Vec<Value> = open
                .iter()
                .flat_map(|s| {
                    [
                        s.delivery_id.as_str().into(),
                        s.claim_token.into(),
                        // Never parked by a retry: due at once if no time was given.
                        s.next_attempt_at.unwrap_or(now).into(),
                        s.attempt_number.into(),
                    ]
                })
                .collect();
            let sql = format!(
                "UPDATE delivery_queue SET due_at = v.column3, attempt_count = v.column4, \
                   claim_token = NULL, claimed_by = NULL \
                 FROM (VALUES {}) AS v \
                 WHERE delivery_queue.id = v.column1 AND delivery_queue.claim_token = v.column2 \
                 RETURNING delivery_queue.id",
                tuples(open.len(), 4, 1)
            );
            matched.extend(returned_ids(db, statement(backend, &sql, values)).await?);
        }
        if matched.is_empty() {
            continue;
        }
        let matched: HashSet<&str> = matched.iter().map(String::as_str).collect();
        let rows: Vec<&Settlement> = chunk
            .iter()
            .filter(|s| matched.contains(s.delivery_id.as_str()))
            .collect();
        let mut values: Vec<Value> = vec![now.into()];
        for s in &rows {
            values.extend([
                Value::from(s.delivery_id.as_str()),
                Value::from(sea_orm::ActiveEnum::to_value(&s.status)),
                Value::from(s.attempt_number),
                Value::from(s.next_attempt_at),
                Value::from(s.attempted_at),
                Value::from(s.response_status),
            ]);
        }
        let sql = settle_sql(rows.len());
        db.execute_raw(statement(backend, &sql, values)).await?;
    }
    Ok(())
}

/// The statement [`settle`] gives `rows` deliveries their outcome with:
/// `$1` is the time, then per row (id, status, attempt number, next
/// attempt, attempted at, response status).
pub fn settle_sql(rows: usize) -> String {
    format!(
        "UPDATE deliveries SET status = v.column2, attempt_count = v.column3, \
           next_attempt_at = v.column4, last_attempt_at = v.column5, \
           last_response_status = v.column6, updated_at = $1 \
         FROM (VALUES {}) AS v WHERE deliveries.id = v.column1",
        tuples(rows, 6, 2)
    )
}

/// Hands claimed deliveries back: due again at `now`, not held. Their
/// deliveries' rows do not change.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    rows: &[(DeliveryId, i64)],
    now: i64,
) -> Result<(), DbErr> {
    let mut by_token: HashMap<i64, Vec<&str>> = HashMap::new();
    for (id, token) in rows {
        by_token.entry(*token).or_default().push(id.as_str());
    }
    for (token, ids) in by_token {
        for chunk in ids.chunks(500) {
            let mut values: Vec<Value> = vec![now.into(), token.into()];
            values.extend(chunk.iter().map(|id| Value::from(*id)));
            let sql = format!(
                "UPDATE delivery_queue SET due_at = $1, claim_token = NULL, claimed_by = NULL \
                 WHERE claim_token = $2 AND id IN ({})",
                placeholders(3, chunk.len())
            );
            db.execute_raw(statement(db.get_database_backend(), &sql, values))
                .await?;
        }
    }
    Ok(())
}

/// Cancels a delivery the worker holds and will not attempt (its webhook
/// is no longer active).
pub async fn cancel_claimed<C: ConnectionTrait>(
    db: &C,
    delivery_id: &DeliveryId,
    token: i64,
    now: i64,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let sql = "DELETE FROM delivery_queue WHERE id = $1 AND claim_token = $2 RETURNING id";
    let values: Vec<Value> = vec![delivery_id.as_str().into(), token.into()];
    if returned_ids(db, statement(backend, sql, values))
        .await?
        .is_empty()
    {
        return Ok(());
    }
    super::operator::mark_cancelled(db, delivery_id, now).await
}
