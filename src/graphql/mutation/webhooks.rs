use async_graphql::{
    Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, Result, SimpleObject,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{
    domain::{
        payload::PayloadPatch,
        webhook_input::OrderingSpec,
        webhooks::{EndpointSpec, NewWebhook, RetryPolicyInput as DomainRetry, WebhookPatch},
    },
    error::AppError,
    graphql::{
        context::ContextExt,
        types::{
            data_filter::DataFilterInput,
            datetime, ids,
            payload::{DeliveryMethod, PayloadFormat},
            webhook::{SignatureScheme, Webhook, WebhookStatus},
        },
    },
};

/// The statuses an admin may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum WebhookStatusInput {
    Active,
    Paused,
}

// Through the output enum, which alone maps to the stored status.
impl From<WebhookStatusInput> for WebhookStatus {
    fn from(status: WebhookStatusInput) -> Self {
        match status {
            WebhookStatusInput::Active => Self::Active,
            WebhookStatusInput::Paused => Self::Paused,
        }
    }
}

#[derive(InputObject)]
pub struct HeaderInput {
    name: String,
    value: String,
}

#[derive(InputObject)]
pub struct EndpointInput {
    /// Absolute http(s) URL, at most 2 048 characters.
    url: String,
    /// Extra headers sent with every request (not `content-type`, `host` or `webhook-*`).
    headers: Option<Vec<HeaderInput>>,
    /// Most requests a second to this endpoint, from all instances together:
    /// 1 to 10 000, or null for no limit. Deliveries over the limit wait
    /// their turn; none is dropped.
    rate_limit_per_second: Option<i32>,
}

impl From<EndpointInput> for EndpointSpec {
    fn from(input: EndpointInput) -> Self {
        Self {
            url: input.url,
            headers: input
                .headers
                .unwrap_or_default()
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            rate_limit_per_second: input.rate_limit_per_second.map(i64::from),
        }
    }
}

/// Ordered delivery: the deliveries of one sequence are attempted one at a
/// time, in publish order; a failing one holds back its sequence alone, and
/// once it fails for good (or is cancelled) the next goes.
#[derive(InputObject)]
pub struct OrderingInput {
    /// A label name: one sequence per endpoint and value of this label
    /// (events without it share one). Omitted: one sequence per endpoint.
    key: Option<String>,
}

impl From<OrderingInput> for OrderingSpec {
    fn from(input: OrderingInput) -> Self {
        Self { key: input.key }
    }
}

#[derive(InputObject)]
pub struct RetryPolicyInput {
    /// Attempts in all, the first included: 1 to 50.
    max_attempts: i32,
    /// Wait after the first failure, in ms (at least 10).
    initial_interval_ms: i64,
    /// Longest wait between attempts, in ms (at most 7 days).
    max_interval_ms: i64,
}

impl From<RetryPolicyInput> for DomainRetry {
    fn from(input: RetryPolicyInput) -> Self {
        Self {
            max_attempts: input.max_attempts.into(),
            initial_interval_ms: input.initial_interval_ms,
            max_interval_ms: input.max_interval_ms,
        }
    }
}

#[derive(InputObject)]
pub struct CreateWebhookInput {
    name: String,
    description: Option<String>,
    /// ACTIVE unless given.
    status: Option<WebhookStatusInput>,
    /// Exact event type names, `object.*` or `*`.
    event_types: Vec<String>,
    /// One to ten endpoints; every matching event goes to each.
    endpoints: Vec<EndpointInput>,
    /// Only events carrying all these labels, each with one of the values
    /// allowed: `{"campaignId": "42"}`, `{"campaignId": ["42", "43"]}`.
    label_filter: Option<Json<Value>>,
    /// Only events whose `data` passes these conditions.
    data_filter: Option<DataFilterInput>,
    /// Deliver in order (see `OrderingInput`); unordered when not given.
    ordering: Option<OrderingInput>,
    /// HMAC_SHA256 (shared secret, `v1`) unless given.
    signature_scheme: Option<SignatureScheme>,
    /// ENVELOPE unless given.
    payload_format: Option<PayloadFormat>,
    /// With `payloadFormat: TEMPLATE`: a minijinja template of the JSON body,
    /// rendered with the event (`id`, `type`, `timestamp`, `data`); at most
    /// 16 KiB, checked when saved.
    body_template: Option<String>,
    /// POST unless given; `GET` and `POST_FORM` make postbacks from the
    /// endpoint URL's macros.
    method: Option<DeliveryMethod>,
    team: Option<String>,
    /// The partner login the webhook belongs to (seed 002's "For Login"):
    /// that partner manages it, and it receives only events whose `login`
    /// label is this login. Set only when created; a partner's own
    /// webhooks always belong to it.
    for_login: Option<String>,
    /// Defaults to 16 attempts over about 31 hours.
    retry_policy: Option<RetryPolicyInput>,
    /// Default 15 000 ms; 100 to 30 000.
    timeout_ms: Option<i64>,
}

#[derive(InputObject)]
pub struct UpdateWebhookInput {
    name: Option<String>,
    description: Option<String>,
    status: Option<WebhookStatusInput>,
    event_types: Option<Vec<String>>,
    /// Replaces the endpoint list; endpoints whose URL stays keep their history.
    endpoints: Option<Vec<EndpointInput>>,
    /// New filter, or null to deliver regardless of labels.
    label_filter: MaybeUndefined<Json<Value>>,
    /// New conditions on `data`, or null to deliver regardless of it.
    data_filter: MaybeUndefined<DataFilterInput>,
    /// Ordered delivery, or null for none: applies to deliveries made from
    /// then on.
    ordering: MaybeUndefined<OrderingInput>,
    /// Leaving `TEMPLATE` drops the template.
    payload_format: Option<PayloadFormat>,
    /// A new body template (with `payloadFormat: TEMPLATE`), or null to drop it.
    body_template: MaybeUndefined<String>,
    method: Option<DeliveryMethod>,
    /// New team, or null to clear it.
    team: MaybeUndefined<String>,
    retry_policy: Option<RetryPolicyInput>,
    timeout_ms: Option<i64>,
}

fn maybe<T, U>(value: MaybeUndefined<T>, f: impl FnOnce(T) -> U) -> Option<Option<U>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(f(v))),
    }
}

#[derive(SimpleObject)]
pub struct CreateWebhookPayload {
    webhook: Webhook,
    /// What receivers verify signatures with: the `whsec_…` secret (shown
    /// only now and on rotation: store it), or for `ED25519` the `whpk_…`
    /// public key (also on the webhook).
    secret: String,
}

#[derive(SimpleObject)]
pub struct RotateWebhookSecretPayload {
    webhook: Webhook,
    /// The new `whsec_…` secret (shown only now), or for `ED25519` the new
    /// `whpk_…` public key.
    secret: String,
    /// Until then the previous secret signs too, beside the new one.
    previous_secret_expires_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct DeleteWebhookPayload {
    deleted_id: ID,
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Creates a webhook and returns its signing secret, once. An admin, or
    /// a partner for itself.
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> Result<CreateWebhookPayload> {
        let (principal, reach) = ctx.manager()?;
        let for_login = match (reach.login(), input.for_login) {
            (None, asked) => asked,
            (Some(own), Some(asked)) if asked != own => {
                return Err(AppError::Forbidden(
                    "a partner creates webhooks for its own login only".into(),
                )
                .into());
            }
            (Some(own), _) => Some(own.to_owned()),
        };
        let new = NewWebhook {
            for_login,
            name: input.name,
            description: input.description,
            status: WebhookStatus::from(input.status.unwrap_or(WebhookStatusInput::Active)).into(),
            event_types: input.event_types,
            endpoints: input.endpoints.into_iter().map(Into::into).collect(),
            label_filter: input.label_filter.map(|f| f.0),
            data_filter: input.data_filter.map(|f| f.to_json()),
            ordering: input.ordering.map(Into::into),
            signature_scheme: input
                .signature_scheme
                .unwrap_or(SignatureScheme::HmacSha256)
                .into(),
            payload: PayloadPatch {
                format: input.payload_format.map(Into::into),
                body_template: input.body_template.map(Some),
                method: input.method.map(Into::into),
            },
            team: input.team,
            retry_policy: input.retry_policy.map(Into::into),
            timeout_ms: input.timeout_ms,
        };
        let (record, secret) = ctx
            .state()
            .webhooks
            .create(&principal.tenant, &principal.login, new)
            .await?;
        Ok(CreateWebhookPayload {
            webhook: Webhook(record),
            secret,
        })
    }

    /// Changes the given fields and leaves the others. An admin, or the
    /// partner it belongs to.
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateWebhookInput,
    ) -> Result<Webhook> {
        let (principal, reach) = ctx.manager()?;
        let id = ids::parse(&id)?;
        ctx.state()
            .webhooks
            .reachable(&principal.tenant, &reach, &id)
            .await?;
        let patch = WebhookPatch {
            name: input.name,
            description: input.description,
            status: input
                .status
                .map(|status| WebhookStatus::from(status).into()),
            event_types: input.event_types,
            endpoints: input
                .endpoints
                .map(|list| list.into_iter().map(Into::into).collect()),
            label_filter: maybe(input.label_filter, |f| f.0),
            data_filter: maybe(input.data_filter, |f| f.to_json()),
            ordering: maybe(input.ordering, Into::into),
            payload: PayloadPatch {
                format: input.payload_format.map(Into::into),
                body_template: maybe(input.body_template, |t| t),
                method: input.method.map(Into::into),
            },
            team: maybe(input.team, |t| t),
            retry_policy: input.retry_policy.map(Into::into),
            timeout_ms: input.timeout_ms,
        };
        let record = ctx
            .state()
            .webhooks
            .update(&principal.tenant, &id, patch)
            .await?;
        Ok(Webhook(record))
    }

    /// Deletes a webhook with its endpoints and delivery history. An admin,
    /// or the partner it belongs to.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<DeleteWebhookPayload> {
        let (principal, reach) = ctx.manager()?;
        let webhook_id = ids::parse(&id)?;
        let webhooks = &ctx.state().webhooks;
        webhooks
            .reachable(&principal.tenant, &reach, &webhook_id)
            .await?;
        webhooks.delete(&principal.tenant, &webhook_id).await?;
        Ok(DeleteWebhookPayload { deleted_id: id })
    }

    /// Issues a new signing secret, of `signatureScheme` (the current one's
    /// when not given: a webhook can move between HMAC and ed25519 this
    /// way); the previous one keeps signing beside it during the grace
    /// period. An admin, or the partner it belongs to.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
        signature_scheme: Option<SignatureScheme>,
    ) -> Result<RotateWebhookSecretPayload> {
        let (principal, reach) = ctx.manager()?;
        let id = ids::parse(&id)?;
        let webhooks = &ctx.state().webhooks;
        webhooks.reachable(&principal.tenant, &reach, &id).await?;
        let (record, secret) = webhooks
            .rotate_secret(&principal.tenant, &id, signature_scheme.map(Into::into))
            .await?;
        let previous_secret_expires_at = record.webhook.previous_secret_expires_at.map(datetime);
        Ok(RotateWebhookSecretPayload {
            webhook: Webhook(record),
            secret,
            previous_secret_expires_at,
        })
    }
}
