use async_graphql::{Context, ID, Object, Result};

use crate::{
    auth::Role,
    graphql::{
        context::ContextExt,
        types::{ids, recovery::RecoveryJob},
    },
};

#[derive(Default)]
pub struct RecoveryQuery;

#[Object]
impl RecoveryQuery {
    async fn recovery_job(&self, ctx: &Context<'_>, id: ID) -> Result<RecoveryJob> {
        let principal = ctx.require(Role::Viewer)?;
        let job = ctx
            .state()
            .recoveries
            .find(&principal.tenant, &ids::parse(&id)?)
            .await?;
        Ok(RecoveryJob::new(job))
    }

    /// The tenant's recoveries (of one webhook, when given), newest first;
    /// at most 100.
    async fn recovery_jobs(
        &self,
        ctx: &Context<'_>,
        webhook_id: Option<ID>,
        #[graphql(default = 20)] first: i32,
    ) -> Result<Vec<RecoveryJob>> {
        let principal = ctx.require(Role::Viewer)?;
        let webhook_id = webhook_id.as_ref().map(ids::parse).transpose()?;
        let jobs = ctx
            .state()
            .recoveries
            .list(
                &principal.tenant,
                webhook_id.as_ref(),
                u64::try_from(first).unwrap_or(0),
            )
            .await?;
        Ok(jobs.into_iter().map(RecoveryJob::new).collect())
    }
}
