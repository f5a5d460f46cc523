use async_graphql::{Context, ID, InputObject, Json, Object, Result, connection::Connection};
use serde_json::Value;

use crate::{
    auth::Role,
    domain::{
        pagination::PageRequest, payload::preview::PreviewSource,
        webhooks::WebhookFilter as DomainFilter,
    },
    error::AppError,
    graphql::{
        context::ContextExt,
        types::{
            connection, ids,
            payload::DeliveryPreview,
            webhook::{Webhook, WebhookStatus},
        },
    },
};

#[derive(InputObject, Default)]
pub struct WebhookFilter {
    status: Option<WebhookStatus>,
    /// Webhooks that receive this event type, exactly or through a wildcard.
    event_type: Option<String>,
    /// Case-insensitive text in the name or description.
    search: Option<String>,
    team: Option<String>,
    /// Only the webhooks of this partner login (a partner always sees only
    /// its own).
    for_login: Option<String>,
}

/// A made-up event to preview a webhook's requests with.
#[derive(InputObject)]
pub struct PreviewSampleInput {
    /// Its event type (need not be one the webhook subscribes to).
    #[graphql(name = "type")]
    event_type: String,
    data: Json<Value>,
    /// Labels, for `wouldDeliver`.
    labels: Option<Json<Value>>,
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    async fn webhook(&self, ctx: &Context<'_>, id: ID) -> Result<Webhook> {
        let (principal, reach) = ctx.reader()?;
        let found = ctx
            .state()
            .webhooks
            .get(&principal.tenant, &ids::parse(&id)?)
            .await?;
        reach.check(&found.webhook)?;
        Ok(Webhook(found))
    }

    /// What `webhookId` would send for a stored event (`eventId`) or a
    /// made-up one (`sample`): per endpoint, the method, URL, headers and
    /// body, rendered as a delivery renders them, and why a request cannot
    /// be made. Nothing is sent or stored. Admin only.
    async fn preview_delivery(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
        event_id: Option<ID>,
        sample: Option<PreviewSampleInput>,
    ) -> Result<DeliveryPreview> {
        let principal = ctx.require(Role::Admin)?;
        let source = match (event_id, sample) {
            (Some(id), None) => PreviewSource::Event(ids::parse(&id)?),
            (None, Some(sample)) => PreviewSource::Sample {
                event_type: sample.event_type,
                data: sample.data.0,
                labels: sample.labels.map(|l| l.0),
            },
            _ => {
                return Err(AppError::bad_input("eventId", "give either eventId or sample").into());
            }
        };
        let found = ctx
            .state()
            .webhooks
            .preview(&principal.tenant, &ids::parse(&webhook_id)?, source)
            .await?;
        Ok(found.into())
    }

    /// The tenant's webhooks, newest first; a partner's own only.
    #[graphql(complexity = "crate::graphql::page_complexity(first, child_complexity)")]
    async fn webhooks(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        filter: Option<WebhookFilter>,
    ) -> Result<Connection<String, Webhook>> {
        let (principal, reach) = ctx.reader()?;
        let page = PageRequest::new(first, after)?;
        let filter = filter.unwrap_or_default();
        let for_login = reach.login().map(str::to_owned).or(filter.for_login);
        let filter = DomainFilter {
            status: filter.status.map(Into::into),
            event_type: filter.event_type,
            search: filter.search,
            team: filter.team,
            for_login,
        };
        let found = ctx
            .state()
            .webhooks
            .list(&principal.tenant, &filter, &page)
            .await?;
        Ok(connection(found, |w| w.webhook.id.to_string(), Webhook))
    }
}
