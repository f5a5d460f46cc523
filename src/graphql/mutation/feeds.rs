use async_graphql::{Context, ID, Object, Result, SimpleObject};

use crate::{
    auth::Role,
    graphql::{
        context::ContextExt,
        types::{feed::FeedLink, ids},
    },
};

#[derive(SimpleObject)]
pub struct CreateFeedLinkPayload {
    feed_link: FeedLink,
    /// The link to hand to the third party: `GET` it for events, oldest
    /// first, with `?after=<next>&limit=<n>`. Shown only now.
    url: String,
}

#[derive(Default)]
pub struct FeedMutation;

#[Object]
impl FeedMutation {
    /// Creates a pull link for a webhook's events. Admin only.
    async fn create_feed_link(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
    ) -> Result<CreateFeedLinkPayload> {
        let principal = ctx.require(Role::Admin)?;
        let state = ctx.state();
        let created = state
            .feeds
            .create(
                &principal.tenant,
                &principal.login,
                &ids::parse(&webhook_id)?,
            )
            .await?;
        Ok(CreateFeedLinkPayload {
            url: format!("{}/feeds/{}", state.public_url(), created.token),
            feed_link: FeedLink(created.link),
        })
    }

    /// Revokes a pull link; it answers 404 from then on. Admin only.
    async fn revoke_feed_link(&self, ctx: &Context<'_>, id: ID) -> Result<FeedLink> {
        let principal = ctx.require(Role::Admin)?;
        Ok(FeedLink(
            ctx.state()
                .feeds
                .revoke(&principal.tenant, &ids::parse(&id)?)
                .await?,
        ))
    }
}
