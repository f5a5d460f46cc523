//! Runs recovery jobs, on every instance, one chunk at a time.
//!
//! A runner takes the running job whose turn it is (the one stepped least
//! recently, not leased to a live instance), leases it for one step,
//! re-queues one chunk and hands the lease back in the same transaction
//! that advances the job's cursor. Jobs of every tenant thus take turns, on
//! every instance, and a runner that dies mid-step leaves a lease that runs
//! out (or whose instance is found gone) and a chunk that was never
//! committed. Cancelling a job makes its step's last statement match
//! nothing, so the chunk rolls back.

use std::{sync::Arc, time::Duration};

use entity::recovery_job::{self, RecoveryState};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Scope, outcomes};
use crate::{
    db::statement,
    domain::{facts::Facts, queue},
    ids::{DeliveryId, InstanceId},
    time::now_ms,
};

/// How long one step may hold a job before another runner may take it.
const LEASE_MS: i64 = 30_000;
/// How often a runner looks for jobs it was not told about (created on
/// another instance, or left by one that died).
const POLL: Duration = Duration::from_secs(5);
/// How long a job waits before looking again when it has its most
/// deliveries open already.
const DRAIN_WAIT: Duration = Duration::from_millis(200);

/// How big a step is.
#[derive(Clone, Copy, Debug)]
pub struct RecoverySettings {
    /// Deliveries re-queued per step at most.
    pub batch: u64,
    /// Most of one job's deliveries open at once.
    pub in_flight: u64,
}

pub(super) struct Runner {
    pub db: DatabaseConnection,
    pub facts: Arc<dyn Facts>,
    pub instance: InstanceId,
    pub settings: RecoverySettings,
    pub created: Arc<Notify>,
}

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Re-queued this many (maybe 0, when the chunk held none still
    /// matching).
    Queued(u64),
    /// The job has its most deliveries open: nothing re-queued this time.
    Draining,
    /// Nothing left: the job is complete.
    Completed,
    /// The job was cancelled, or its lease was lost, meanwhile.
    Gone,
}

impl Runner {
    pub(super) async fn run(self, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        while !stop.is_cancelled() {
            let pause = match self.step_next().await {
                Ok(Some(Step::Queued(_) | Step::Completed | Step::Gone)) => None,
                Ok(Some(Step::Draining)) => Some(DRAIN_WAIT),
                Ok(None) => Some(POLL),
                Err(err) => {
                    tracing::warn!(retry_in = ?backoff, "recovering deliveries failed: {err}");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    Some(backoff)
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = self.created.notified() => {}
                    () = stop.cancelled() => {}
                }
            } else {
                backoff = Duration::from_millis(200);
            }
        }
    }

    /// Leases the job whose turn it is and steps it; `None` when no job
    /// is waiting.
    async fn step_next(&self) -> Result<Option<Step>, DbErr> {
        let now = now_ms();
        let Some(job) = lease_next(&self.db, &self.instance, now).await? else {
            return Ok(None);
        };
        let step = self.step(&job, now).await;
        if !matches!(step, Ok(Step::Queued(_) | Step::Completed | Step::Gone)) {
            // Hand the lease back (the step's transaction did not).
            self.release(&job, now).await?;
        }
        let step = step?;
        if matches!(step, Step::Queued(count) if count > 0) {
            self.facts.deliveries_due();
        }
        if step == Step::Completed {
            tracing::info!(job = %job.id, queued = job.queued, "recovery completed");
        }
        Ok(Some(step))
    }

    /// Re-queues the job's next chunk, within its bound of open
    /// deliveries, and advances its cursor, in one transaction.
    async fn step(&self, job: &recovery_job::Model, now: i64) -> Result<Step, DbErr> {
        let open = outcomes(&self.db, &job.id).await?.open;
        let room = self.settings.in_flight.saturating_sub(open);
        if room == 0 {
            return Ok(Step::Draining);
        }
        let scope = Scope::of(job);
        let txn = self.db.begin().await?;
        let mut chunk = scope.matching();
        if let Some(cursor) = &job.cursor {
            chunk = chunk.filter(entity::delivery::Column::Id.gt(cursor.as_str()));
        }
        let ids: Vec<DeliveryId> = chunk
            .select_only()
            .column(entity::delivery::Column::Id)
            .limit(Ord::min(room, self.settings.batch))
            .into_tuple()
            .all(&txn)
            .await?;
        let Some(last) = ids.last() else {
            let done = finish(&txn, job, &self.instance, now).await?;
            txn.commit().await?;
            return Ok(if done { Step::Completed } else { Step::Gone });
        };
        let queued = queue::requeue(&txn, &ids, &scope.statuses, &job.id, now).await?;
        let advanced = handed_back(job, &self.instance, now)
            .col_expr(recovery_job::Column::Cursor, Expr::value(last.as_str()))
            .col_expr(
                recovery_job::Column::Queued,
                Expr::col(recovery_job::Column::Queued).add(queued as i64),
            )
            .exec(&txn)
            .await?;
        if advanced.rows_affected == 0 {
            txn.rollback().await?;
            return Ok(Step::Gone);
        }
        txn.commit().await?;
        if queued > 0 {
            queue::promote_stranded(&self.db, Some(&job.webhook_id), now).await?;
        }
        Ok(Step::Queued(queued))
    }

    /// Hands the job's lease back, its turn taken.
    async fn release(&self, job: &recovery_job::Model, now: i64) -> Result<(), DbErr> {
        handed_back(job, &self.instance, now).exec(&self.db).await?;
        Ok(())
    }
}

/// An update of the job, if still running and leased to `instance`, that
/// hands its lease back at `now`; callers add what the step changed.
fn handed_back(
    job: &recovery_job::Model,
    instance: &InstanceId,
    now: i64,
) -> sea_orm::UpdateMany<recovery_job::Entity> {
    recovery_job::Entity::update_many()
        .col_expr(recovery_job::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            recovery_job::Column::LeasedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            recovery_job::Column::LeaseUntil,
            Expr::value(Option::<i64>::None),
        )
        .filter(held_by(job, instance))
}

/// The job, still running and still leased to `instance`.
fn held_by(job: &recovery_job::Model, instance: &InstanceId) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(recovery_job::Column::Id.eq(job.id.as_str()))
        .add(recovery_job::Column::State.eq(RecoveryState::Running))
        .add(recovery_job::Column::LeasedBy.eq(instance.as_str()))
}

/// Marks the job complete; false if it was cancelled or its lease lost.
async fn finish<C: ConnectionTrait>(
    db: &C,
    job: &recovery_job::Model,
    instance: &InstanceId,
    now: i64,
) -> Result<bool, DbErr> {
    let result = handed_back(job, instance, now)
        .col_expr(
            recovery_job::Column::State,
            Expr::value(RecoveryState::Completed),
        )
        .col_expr(recovery_job::Column::FinishedAt, Expr::value(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Leases the running job stepped least recently among those no live
/// runner holds: never leased, lease run out, or leased by an instance no
/// longer registered.
async fn lease_next(
    db: &DatabaseConnection,
    instance: &InstanceId,
    now: i64,
) -> Result<Option<recovery_job::Model>, DbErr> {
    let backend = db.get_database_backend();
    let lock = if backend == DbBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE recovery_jobs SET leased_by = $1, lease_until = $2 \
         WHERE id IN (SELECT id FROM recovery_jobs \
             WHERE state = 'RUNNING' AND (leased_by IS NULL OR lease_until < $3 \
                 OR leased_by NOT IN (SELECT id FROM instances)) \
             ORDER BY updated_at, id LIMIT 1{lock}) \
         RETURNING *"
    );
    let values = vec![
        instance.as_str().into(),
        (now + LEASE_MS).into(),
        now.into(),
    ];
    recovery_job::Entity::find()
        .from_raw_sql(statement(backend, &sql, values))
        .one(db)
        .await
}
