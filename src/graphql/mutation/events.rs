use async_graphql::{Context, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use serde_json::Value;

use tracing::Instrument;

use crate::{
    auth::Role,
    domain::events::{PublishInput, Published},
    graphql::{context::ContextExt, types::event::Event},
    telemetry::{self, InboundTrace},
};

/// The span of one publish call, in the publisher's trace when its request
/// carried a `traceparent`, and the context its events keep for their
/// deliveries to continue.
fn publish_span(ctx: &Context<'_>, tenant: &str, events: usize) -> (tracing::Span, Option<String>) {
    let inbound = ctx.data_opt::<InboundTrace>().map(|t| t.0.as_str());
    // Made only when exported: a span costs a registry entry and its
    // formatted fields on every publish.
    let span = if telemetry::exporting() {
        tracing::info_span!("publish", tenant, events)
    } else {
        tracing::Span::none()
    };
    telemetry::continue_trace(&span, inbound);
    let trace = telemetry::traceparent_of(&span, inbound);
    (span, trace)
}

#[derive(InputObject)]
pub struct PublishEventInput {
    /// A known event type, `object.action`.
    #[graphql(name = "type")]
    event_type: String,
    /// The payload: public ids, and for `*.status_changed` both the previous
    /// and the new status.
    data: Json<Value>,
    /// String labels webhooks can filter on, e.g. `{"campaignId": "42"}`.
    labels: Option<Json<Value>>,
    /// When it happened; now if omitted.
    occurred_at: Option<DateTime<Utc>>,
    /// Publishing again with the same key within 24 hours returns the first
    /// event instead of creating another.
    idempotency_key: Option<String>,
}

impl From<PublishEventInput> for PublishInput {
    fn from(input: PublishEventInput) -> Self {
        Self {
            event_type: input.event_type,
            data: input.data.0,
            labels: input.labels.map(|l| l.0),
            occurred_at: input.occurred_at.map(|t| t.timestamp_millis()),
            idempotency_key: input.idempotency_key,
            trace_context: None,
        }
    }
}

#[derive(SimpleObject)]
pub struct PublishEventPayload {
    event: Event,
    /// Deliveries created: one per matching active webhook endpoint.
    delivery_count: i32,
    /// True when the idempotency key returned an earlier event.
    duplicate: bool,
}

impl From<Published> for PublishEventPayload {
    fn from(published: Published) -> Self {
        Self {
            delivery_count: published.delivery_count.min(i32::MAX as u64) as i32,
            duplicate: published.duplicate,
            event: Event(published.event),
        }
    }
}

#[derive(Default)]
pub struct EventMutation;

#[Object]
impl EventMutation {
    /// Publishes one event. Answers once the event and its deliveries are
    /// committed; delivery happens in the background. Publisher or admin.
    async fn publish_event(
        &self,
        ctx: &Context<'_>,
        input: PublishEventInput,
    ) -> Result<PublishEventPayload> {
        let principal = ctx.require(Role::Publisher)?;
        let (span, trace) = publish_span(ctx, &principal.tenant, 1);
        let mut input = PublishInput::from(input);
        input.trace_context = trace;
        let mut published = ctx
            .state()
            .events
            .publish(&principal.tenant, vec![input], false)
            .instrument(span)
            .await?;
        Ok(published.remove(0).into())
    }

    /// Publishes up to 1 000 events in one transaction: all or none.
    /// Publisher or admin.
    async fn publish_events(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<PublishEventInput>,
    ) -> Result<Vec<PublishEventPayload>> {
        let principal = ctx.require(Role::Publisher)?;
        let (span, trace) = publish_span(ctx, &principal.tenant, inputs.len());
        let inputs = inputs
            .into_iter()
            .map(|input| PublishInput {
                trace_context: trace.clone(),
                ..input.into()
            })
            .collect();
        let published = ctx
            .state()
            .events
            .publish(&principal.tenant, inputs, true)
            .instrument(span)
            .await?;
        Ok(published.into_iter().map(Into::into).collect())
    }
}
