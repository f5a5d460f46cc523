use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};
use entity::recovery_job;
use tokio::sync::OnceCell;

use super::{datetime, delivery::DeliveryStatus};
use crate::{
    domain::recovery::{Outcomes, Scope},
    graphql::context::ContextExt,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(remote = "recovery_job::RecoveryState")]
pub enum RecoveryState {
    /// Re-queueing, a chunk at a time.
    Running,
    /// Every matching delivery was re-queued (they may still be being
    /// attempted: see `open`).
    Completed,
    /// Stopped by an admin; what it had re-queued stays queued.
    Cancelled,
}

/// A background job re-queueing the settled deliveries of a window (see
/// `recoverDeliveries`). It goes on after a restart, on any instance.
pub struct RecoveryJob(recovery_job::Model, OnceCell<Outcomes>);

impl RecoveryJob {
    pub fn new(job: recovery_job::Model) -> Self {
        Self(job, OnceCell::new())
    }

    /// Where its deliveries stand, read once however many counts are asked.
    async fn outcomes(&self, ctx: &Context<'_>) -> Result<Outcomes> {
        let outcomes = self
            .1
            .get_or_try_init(|| ctx.state().recoveries.outcomes(&self.0.id))
            .await?;
        Ok(*outcomes)
    }
}

fn count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[Object]
impl RecoveryJob {
    async fn id(&self) -> ID {
        self.0.id.clone().into()
    }

    async fn state(&self) -> RecoveryState {
        self.0.state.into()
    }

    async fn webhook_id(&self) -> ID {
        self.0.webhook_id.clone().into()
    }

    /// Set when only one endpoint's deliveries are recovered.
    async fn endpoint_id(&self) -> Option<ID> {
        self.0.endpoint_id.clone().map(Into::into)
    }

    async fn since(&self) -> DateTime<Utc> {
        datetime(self.0.since)
    }

    async fn until(&self) -> Option<DateTime<Utc>> {
        self.0.until.map(datetime)
    }

    /// The statuses of the deliveries it re-queues.
    async fn statuses(&self) -> Vec<DeliveryStatus> {
        Scope::of(&self.0)
            .statuses
            .into_iter()
            .map(Into::into)
            .collect()
    }

    /// Deliveries that matched when the job started.
    async fn total(&self) -> i32 {
        count(u64::try_from(self.0.total).unwrap_or(0))
    }

    /// Deliveries re-queued so far.
    async fn queued(&self) -> i32 {
        count(u64::try_from(self.0.queued).unwrap_or(0))
    }

    /// Of those re-queued: still to be attempted, or being retried.
    async fn open(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(count(self.outcomes(ctx).await?.open))
    }

    /// Of those re-queued: delivered since.
    async fn succeeded(&self, ctx: &Context<'_>) -> Result<i32> {
        Ok(count(self.outcomes(ctx).await?.succeeded))
    }

    /// Of those re-queued: failed again (or cancelled) since.
    async fn failed(&self, ctx: &Context<'_>) -> Result<i32> {
        let outcomes = self.outcomes(ctx).await?;
        Ok(count(outcomes.failed + outcomes.cancelled))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        datetime(self.0.created_at)
    }

    /// When it completed or was cancelled.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at.map(datetime)
    }
}
