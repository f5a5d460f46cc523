use async_graphql::{Context, Object, Result};

use crate::graphql::{context::ContextExt, types::viewer::Viewer};

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// Who the token belongs to.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        Ok(ctx.principal()?.into())
    }
}
