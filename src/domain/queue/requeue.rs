//! A recovery job's transition: settled deliveries re-opened in bulk.

use entity::delivery::{self, DeliveryStatus};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, QueryFilter, sea_query::Expr};

use super::unclaimed_due;
use crate::ids::{DeliveryId, RecoveryJobId};

/// Makes the deliveries among `ids` that still have one of `statuses` (all
/// settled ones) due now, as [`super::reschedule`] does, stamped with the recovery
/// job that did it; ordered ones are parked for [`super::promote_stranded`].
/// Returns how many it re-queued.
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
    let reopened = Expr::cust("CASE WHEN attempt_count = 0 THEN 'PENDING' ELSE 'RETRYING' END");
    // `now` is a number: written into the SQL, it needs no parameter.
    let due = Expr::cust(format!(
        "CASE WHEN ordering_key IS NULL THEN {now} ELSE NULL END"
    ));
    Ok(unclaimed_due(due, now)
        .col_expr(delivery::Column::Status, reopened)
        .col_expr(delivery::Column::RecoveryJobId, Expr::value(job.as_str()))
        .filter(delivery::Column::Id.is_in(ids.iter().map(DeliveryId::as_str)))
        .filter(delivery::Column::Status.is_in(statuses.iter().copied()))
        .exec(db)
        .await?
        .rows_affected)
}
