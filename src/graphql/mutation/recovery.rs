use async_graphql::{Context, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};

use crate::{
    auth::Role,
    domain::recovery::RecoveryRequest,
    graphql::{
        context::ContextExt,
        types::{delivery::DeliveryStatus, ids, recovery::RecoveryJob},
    },
};

/// Which deliveries a recovery re-queues: those of one webhook, or of one
/// endpoint (give exactly one), created in `[since, until)`.
#[derive(InputObject)]
pub struct RecoveryFilter {
    webhook_id: Option<ID>,
    endpoint_id: Option<ID>,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    /// Settled statuses to re-queue: FAILED and CANCELLED when not given.
    statuses: Option<Vec<DeliveryStatus>>,
}

#[derive(Default)]
pub struct RecoveryMutation;

#[Object]
impl RecoveryMutation {
    /// Re-queues, in the background, every delivery matching `filter`: after
    /// an outage on the receiving side, what failed or was cancelled is
    /// attempted again, each delivery once more, oldest first. Answers at
    /// once with the job; follow it with `recoveryJob(id)`. Deliveries to
    /// disabled endpoints are left alone. At most 5 recoveries run per
    /// tenant at once. Admin only.
    async fn recover_deliveries(
        &self,
        ctx: &Context<'_>,
        filter: RecoveryFilter,
    ) -> Result<RecoveryJob> {
        let principal = ctx.require(Role::Admin)?;
        let request = RecoveryRequest {
            webhook_id: filter.webhook_id.as_ref().map(ids::parse).transpose()?,
            endpoint_id: filter.endpoint_id.as_ref().map(ids::parse).transpose()?,
            since: filter.since.timestamp_millis(),
            until: filter.until.map(|until| until.timestamp_millis()),
            statuses: match filter.statuses {
                Some(statuses) => statuses.into_iter().map(Into::into).collect(),
                None => RecoveryRequest::DEFAULT_STATUSES.to_vec(),
            },
        };
        let job = ctx
            .state()
            .recoveries
            .start(&principal.tenant, &request)
            .await?;
        Ok(RecoveryJob::new(job))
    }

    /// Stops a running recovery; deliveries it re-queued stay queued. Admin
    /// only.
    async fn cancel_recovery(&self, ctx: &Context<'_>, id: ID) -> Result<RecoveryJob> {
        let principal = ctx.require(Role::Admin)?;
        let job = ctx
            .state()
            .recoveries
            .cancel(&principal.tenant, &ids::parse(&id)?)
            .await?;
        Ok(RecoveryJob::new(job))
    }
}
