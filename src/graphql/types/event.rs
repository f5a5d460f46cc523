use async_graphql::{Context, ID, Json, Object, Result, connection::Connection};
use chrono::{DateTime, Utc};
use entity::event;
use serde_json::Value;

use super::{
    datetime,
    delivery::{Delivery, DeliveryStatus, delivery_connection},
};
use crate::{domain::deliveries::DeliveryFilter, graphql::budget, ids::IdFilter};

/// Whether a selection on an event asks for its payload.
pub fn wants_payload(event: &async_graphql::Lookahead<'_>) -> bool {
    event.field("data").exists() || event.field("body").exists()
}

/// Something that happened on the platform, as published.
pub struct Event(pub event::Model);

#[Object]
impl Event {
    async fn id(&self) -> ID {
        self.0.id.clone().into()
    }

    /// The event type, `object.action`.
    #[graphql(name = "type")]
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }

    /// When it happened, as the publisher said (or when it was published).
    async fn occurred_at(&self) -> DateTime<Utc> {
        datetime(self.0.occurred_at)
    }

    /// When hookline accepted it.
    async fn created_at(&self) -> DateTime<Utc> {
        datetime(self.0.created_at)
    }

    /// The payload, as published.
    async fn data(&self, ctx: &Context<'_>) -> Result<Json<Value>> {
        budget::charge(ctx, self.0.body.len())?;
        let mut body: Value = serde_json::from_str(&self.0.body).unwrap_or_default();
        Ok(Json(
            body.get_mut("data").map(Value::take).unwrap_or_default(),
        ))
    }

    /// The exact JSON body every endpoint receives (and that is signed).
    async fn body(&self, ctx: &Context<'_>) -> Result<&str> {
        budget::charge(ctx, self.0.body.len())?;
        Ok(&self.0.body)
    }

    async fn labels(&self) -> Json<Value> {
        Json(self.0.labels.clone())
    }

    async fn idempotency_key(&self) -> Option<&str> {
        self.0.idempotency_key.as_deref()
    }

    /// This event's deliveries, newest first.
    #[graphql(complexity = "crate::graphql::page_complexity(first, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<DeliveryStatus>,
    ) -> Result<Connection<String, Delivery>> {
        let filter = DeliveryFilter {
            event_id: Some(IdFilter::Is(self.0.id.clone())),
            status: status.map(Into::into),
            ..DeliveryFilter::default()
        };
        delivery_connection(ctx, &self.0.tenant_id, filter, first, after).await
    }
}
