//! A recovery job's transition: settled deliveries re-opened in bulk.

use entity::delivery::DeliveryStatus;
use sea_orm::{ConnectionTrait, DbErr, Value};

use super::{queue_from_deliveries, returned_ids};
use crate::{
    db::{placeholders, statement},
    ids::{DeliveryId, RecoveryJobId},
};

/// Makes the deliveries among `ids` that still have one of `statuses` (all
/// settled ones) due now, as [`super::reschedule`] does, stamped with the
/// recovery job that did it; ordered ones are parked for
/// [`super::promote_stranded`]. Call it inside a transaction. Returns how
/// many it re-queued.
pub async fn requeue<C: ConnectionTrait>(
    db: &C,
    ids: &[DeliveryId],
    statuses: &[DeliveryStatus],
    job: &RecoveryJobId,
    now: i64,
) -> Result<u64, DbErr> {
    if ids.is_empty() || statuses.is_empty() {
        return Ok(0);
    }
    let mut reopened = 0;
    for chunk in ids.chunks(500) {
        let mut values: Vec<Value> = vec![now.into(), job.as_str().into()];
        values.extend(
            statuses
                .iter()
                .map(|s| Value::from(sea_orm::ActiveEnum::to_value(s))),
        );
        let first_id = values.len() + 1;
        values.extend(chunk.iter().map(|id| Value::from(id.as_str())));
        let sql = format!(
            "UPDATE deliveries SET \
               status = CASE WHEN attempt_count = 0 THEN 'PENDING' ELSE 'RETRYING' END, \
               next_attempt_at = CASE WHEN ordering_key IS NULL THEN $1 ELSE NULL END, \
               recovery_job_id = $2, updated_at = $1 \
             WHERE status IN ({}) AND id IN ({}) RETURNING id",
            placeholders(3, statuses.len()),
            placeholders(first_id, chunk.len())
        );
        let ids = returned_ids(db, statement(db.get_database_backend(), &sql, values)).await?;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        queue_from_deliveries(db, &ids).await?;
        reopened += ids.len() as u64;
    }
    Ok(reopened)
}
