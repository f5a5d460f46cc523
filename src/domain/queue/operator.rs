//! Transitions an operator or the instances' heartbeat makes, outside any
//! claim: a delivery retried or cancelled by hand, the claims of a dead
//! instance handed back, and the question "is a worker on it right now?".

use entity::delivery::{self, DeliveryStatus};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait, Value};

use super::queue_from_deliveries;
use crate::{
    db::{placeholders, statement},
    ids::{DeliveryId, InstanceId},
};

/// Whether a worker holds the delivery: it was claimed and the lease has
/// not run out.
pub async fn held<C: ConnectionTrait>(db: &C, id: &DeliveryId, now: i64) -> Result<bool, DbErr> {
    let sql = "SELECT 1 AS held FROM delivery_queue \
               WHERE id = $1 AND claim_token IS NOT NULL AND due_at > $2";
    let values: Vec<Value> = vec![id.as_str().into(), now.into()];
    Ok(db
        .query_one_raw(statement(db.get_database_backend(), sql, values))
        .await?
        .is_some())
}

/// Makes a delivery due now, whatever its status: PENDING if it was never
/// attempted, RETRYING otherwise. Any claim on it ends. Returns whether the
/// row was there.
pub async fn reschedule(
    db: &DatabaseConnection,
    current: &delivery::Model,
    now: i64,
) -> Result<bool, DbErr> {
    let status = if current.attempt_count == 0 {
        DeliveryStatus::Pending
    } else {
        DeliveryStatus::Retrying
    };
    let txn = db.begin().await?;
    let sql = "UPDATE deliveries SET status = $1, next_attempt_at = $2, updated_at = $2 \
               WHERE id = $3 AND tenant_id = $4";
    let values: Vec<Value> = vec![
        sea_orm::ActiveEnum::to_value(&status).into(),
        now.into(),
        current.id.as_str().into(),
        current.tenant_id.as_str().into(),
    ];
    let found = txn
        .execute_raw(statement(txn.get_database_backend(), sql, values))
        .await?
        .rows_affected()
        > 0;
    if found {
        queue_from_deliveries(&txn, &[current.id.as_str()]).await?;
    }
    txn.commit().await?;
    Ok(found)
}

/// Stops an open delivery of the tenant. Returns whether it was open.
pub async fn cancel(
    db: &DatabaseConnection,
    tenant: &str,
    id: &DeliveryId,
    now: i64,
) -> Result<bool, DbErr> {
    let txn = db.begin().await?;
    let sql = "DELETE FROM delivery_queue WHERE id = $1 AND tenant_id = $2 RETURNING id";
    let values: Vec<Value> = vec![id.as_str().into(), tenant.into()];
    let open = txn
        .query_one_raw(statement(txn.get_database_backend(), sql, values))
        .await?
        .is_some();
    if open {
        mark_cancelled(&txn, id, now).await?;
    }
    txn.commit().await?;
    Ok(open)
}

/// The delivery's row once its queue row is gone without an attempt.
pub(super) async fn mark_cancelled<C: ConnectionTrait>(
    db: &C,
    id: &DeliveryId,
    now: i64,
) -> Result<(), DbErr> {
    let sql = "UPDATE deliveries SET status = 'CANCELLED', next_attempt_at = NULL, \
               updated_at = $1 WHERE id = $2";
    let values: Vec<Value> = vec![now.into(), id.as_str().into()];
    db.execute_raw(statement(db.get_database_backend(), sql, values))
        .await?;
    Ok(())
}

/// Hands back the deliveries held by instances found dead; returns how
/// many.
pub async fn reap<C: ConnectionTrait>(db: &C, dead: &[InstanceId], now: i64) -> Result<u64, DbErr> {
    if dead.is_empty() {
        return Ok(0);
    }
    let mut values: Vec<Value> = vec![now.into()];
    values.extend(dead.iter().map(|id| Value::from(id.as_str())));
    let sql = format!(
        "UPDATE delivery_queue SET due_at = $1, claim_token = NULL, claimed_by = NULL \
         WHERE claimed_by IN ({})",
        placeholders(2, dead.len())
    );
    Ok(db
        .execute_raw(statement(db.get_database_backend(), &sql, values))
        .await?
        .rows_affected())
}
