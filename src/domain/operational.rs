//! hookline's own events, published into a tenant's stream when one of its
//! endpoints starts failing, is disabled or recovers, and when a delivery
//! runs out of attempts. A tenant subscribes a webhook to them like to any
//! type (`hookline.*`, or exact names; `*` alone does not select them), so a
//! chat or pager URL can be told before a customer complains.
//!
//! Each is published in the transaction of the change it reports, so it
//! exists exactly when that change commits: one `hookline.endpoint.disabled`
//! per disable. None is ever published about the delivery of an operational
//! event, so a dead operations endpoint cannot feed events into itself.

use entity::{delivery, event};
use sea_orm::{DatabaseTransaction, DbErr};
use serde_json::{Value, json};

use super::{events::system_event, publish::insert_events, queue, targets::load_active};
use crate::ids::{EndpointId, WebhookId};

pub const ENDPOINT_FAILING: &str = "hookline.endpoint.failing";
pub const ENDPOINT_DISABLED: &str = "hookline.endpoint.disabled";
pub const ENDPOINT_RECOVERED: &str = "hookline.endpoint.recovered";
pub const DELIVERY_EXHAUSTED: &str = "hookline.delivery.exhausted";

/// Whether `event_type` is one of hookline's own (`hookline.…`).
pub fn is_operational(event_type: &str) -> bool {
    event_type.starts_with("hookline.")
}

/// An operational event to publish: its type and `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub tenant: String,
    pub event_type: &'static str,
    pub data: Value,
}

/// Which endpoint a notice is about, as its `data` names it.
pub struct EndpointRef<'a> {
    pub tenant: &'a str,
    pub webhook_id: &'a WebhookId,
    pub endpoint_id: &'a EndpointId,
    pub url: &'a str,
}

impl Notice {
    /// A notice about an endpoint, with `detail` added to its data.
    pub fn endpoint(event_type: &'static str, about: &EndpointRef<'_>, detail: Value) -> Self {
        let mut data = json!({
            "webhookId": about.webhook_id,
            "endpointId": about.endpoint_id,
            "url": about.url,
        });
        if let (Some(data), Value::Object(detail)) = (data.as_object_mut(), detail) {
            data.extend(detail);
        }
        Self {
            tenant: about.tenant.to_owned(),
            event_type,
            data,
        }
    }
}

/// Publishes `notice` inside `txn`: the event, and a delivery to every active
/// endpoint of the tenant's active webhooks that select it.
pub async fn publish(
    txn: &DatabaseTransaction,
    notice: &Notice,
    now: i64,
) -> Result<(event::Model, Vec<delivery::Model>), DbErr> {
    let model = system_event(&notice.tenant, notice.event_type, &notice.data, now);
    let active = load_active(txn, &notice.tenant).await?;
    let no_labels = Default::default();
    let deliveries: Vec<delivery::Model> = active
        .matching(notice.event_type, &no_labels, &notice.data)
        .flat_map(|target| {
            target
                .endpoint_ids
                .iter()
                // Unordered even for an ordered webhook: a report must not
                // wait behind the deliveries it reports on.
                .map(|endpoint| queue::new_delivery(&model, &target.webhook_id, endpoint, now))
        })
        .collect();
    insert_events(txn, std::slice::from_ref(&model)).await?;
    queue::enqueue(txn, &deliveries, None).await?;
    tracing::info!(
        tenant = %notice.tenant,
        event_type = notice.event_type,
        deliveries = deliveries.len(),
        "operational event published"
    );
    Ok((model, deliveries))
}
