use async_graphql::{Context, ID, Json, Object, Result, connection::Connection};
use chrono::{DateTime, Utc};
use entity::event;
use serde_json::Value;

use super::{
    datetime,
    delivery::{Delivery, DeliveryStatus, delivery_connection},
};
use crate::domain::deliveries::DeliveryFilter;

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
    async fn data(&self) -> Json<Value> {
        let body: Value = serde_json::from_str(&self.0.body).unwrap_or_default();
        Json(body.get("data").cloned().unwrap_or(Value::Null))
    }

    /// The exact JSON body every endpoint receives (and that is signed).
    async fn body(&self) -> &str {
        &self.0.body
    }

    async fn labels(&self) -> Json<Value> {
        Json(self.0.labels.clone())
    }

    async fn idempotency_key(&self) -> Option<&str> {
        self.0.idempotency_key.as_deref()
    }

    /// This event's deliveries, newest first.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        status: Option<DeliveryStatus>,
    ) -> Result<Connection<String, Delivery>> {
        let filter = DeliveryFilter {
            event_id: Some(self.0.id.clone()),
            status: status.map(Into::into),
            ..DeliveryFilter::default()
        };
        delivery_connection(ctx, &self.0.tenant_id, filter, first, after).await
    }
}
