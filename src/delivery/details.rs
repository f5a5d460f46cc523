//! What claimed deliveries need to be attempted, read in one go: their
//! events' bodies, their webhooks (secrets decrypted through the target
//! cache) and endpoints.

use std::{collections::HashMap, sync::Arc, time::Instant};

use bytes::Bytes;
use entity::{
    endpoint::{self, EndpointStatus},
    event,
    webhook::{self, WebhookStatus},
};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};

use super::job::{Job, TargetCache};
use crate::{
    crypto::SecretBox,
    domain::queue::{Claimed, Sequence},
    ids::{DeliveryId, EndpointId, EventId, WebhookId},
};

/// A claimed delivery, made ready or found unsendable.
pub enum Prepared {
    Ready(Job),
    /// Its webhook or its endpoint is no longer active: cancel it.
    Inactive {
        delivery_id: DeliveryId,
        /// Its ordered sequence, whose next delivery is then first.
        sequence: Option<Sequence>,
    },
    /// Its endpoint (or webhook, and with it its endpoints) no longer
    /// exists: removed while the publish that made it ran, and not swept
    /// (see `domain::removal`). Delete everything still queued for it,
    /// the rest of an ordered sequence with it.
    Removed(EndpointId),
    /// Unreadable secrets or a vanished event: left to the lease, so a
    /// fixed configuration picks it up again.
    Unready,
}

/// Turns claimed rows into jobs, reading what they need once per batch.
pub async fn prepare(
    db: &DatabaseConnection,
    claimed: Vec<Claimed>,
    token: i64,
    targets: &TargetCache,
    secrets: &SecretBox,
    now: i64,
) -> Result<Vec<Prepared>, DbErr> {
    let details = load_details(db, &claimed).await?;
    type Sendable = (Arc<str>, Bytes, Option<Arc<str>>);
    let mut bodies: HashMap<EventId, Sendable> = HashMap::new();
    let claimed_at = Instant::now();
    let mut prepared = Vec::with_capacity(claimed.len());
    for row in claimed {
        let model = details.webhooks.get(&row.webhook_id);
        let endpoint_row = details.endpoints.get(&row.endpoint_id);
        let (Some(model), Some(endpoint_row)) = (model, endpoint_row) else {
            prepared.push(Prepared::Removed(row.endpoint_id));
            continue;
        };
        if model.status != WebhookStatus::Active || endpoint_row.status != EndpointStatus::Active {
            prepared.push(Prepared::Inactive {
                sequence: row.ordering_key.map(|key| (row.endpoint_id, key)),
                delivery_id: row.id,
            });
            continue;
        }
        let ready = targets
            .targets(model, endpoint_row, secrets, now)
            .map_err(|err| {
                tracing::error!(webhook_id = %row.webhook_id, "cannot prepare the webhook's target: {err:#}")
            })
            .ok();
        let body = match bodies.get(&row.event_id) {
            Some(found) => Some(found.clone()),
            None => details
                .events
                .get(&row.event_id)
                .map(|(kind, body, trace)| {
                    let entry = (
                        Arc::<str>::from(kind.as_str()),
                        Bytes::from(body.clone()),
                        trace.as_deref().map(Arc::<str>::from),
                    );
                    bodies.insert(row.event_id.clone(), entry.clone());
                    entry
                }),
        };
        prepared.push(match (ready, body) {
            (Some((webhook, endpoint)), Some((event_type, body, trace_context))) => {
                Prepared::Ready(Job {
                    delivery_id: row.id,
                    tenant_id: row.tenant_id,
                    event_id: row.event_id,
                    event_type,
                    body,
                    trace_context,
                    webhook,
                    endpoint,
                    attempt: row.attempt_count.max(0) as u32 + 1,
                    claim_token: token,
                    claimed_at,
                    read_at: claimed_at,
                    ordering_key: row.ordering_key,
                })
            }
            _ => Prepared::Unready,
        });
    }
    Ok(prepared)
}

/// What claimed deliveries need to be attempted.
struct Details {
    /// event id -> (type, body, traceparent)
    events: HashMap<EventId, (String, String, Option<String>)>,
    webhooks: HashMap<WebhookId, webhook::Model>,
    endpoints: HashMap<EndpointId, endpoint::Model>,
}

async fn load_details(db: &DatabaseConnection, claimed: &[Claimed]) -> Result<Details, DbErr> {
    let event_ids = unique(claimed.iter().map(|c| c.event_id.as_str()));
    let webhook_ids = unique(claimed.iter().map(|c| c.webhook_id.as_str()));
    let endpoint_ids = unique(claimed.iter().map(|c| c.endpoint_id.as_str()));
    let events = event::Entity::find()
        .select_only()
        .columns([
            event::Column::Id,
            event::Column::EventType,
            event::Column::Body,
            event::Column::TraceContext,
        ])
        .filter(event::Column::Id.is_in(event_ids))
        .into_tuple::<(EventId, String, String, Option<String>)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, kind, body, trace)| (id, (kind, body, trace)))
        .collect();
    let webhooks = webhook::Entity::find()
        .filter(webhook::Column::Id.is_in(webhook_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|w| (w.id.clone(), w))
        .collect();
    let endpoints = endpoint::Entity::find()
        .filter(endpoint::Column::Id.is_in(endpoint_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    Ok(Details {
        events,
        webhooks,
        endpoints,
    })
}

fn unique<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut ids: Vec<&str> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
