//! Turns news known by id into rows for local subscribers: delivery status
//! changes, and whatever other instances report through the relay.

use std::{collections::HashMap, sync::Arc};

use entity::{delivery, delivery_attempt, event};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::mpsc;

use super::{Bus, Notice};
use crate::{
    domain::facts::LiveAttempt,
    ids::{DeliveryId, EventId},
};

/// Most rows a resync re-reads.
const RESYNC_LIMIT: u64 = 10_000;

pub async fn run(db: DatabaseConnection, bus: Arc<Bus>, mut notices: mpsc::Receiver<Notice>) {
    while let Some(notice) = notices.recv().await {
        if let Err(err) = handle(&db, &bus, notice).await {
            tracing::warn!("could not load news for live subscribers: {err}");
        }
    }
}

async fn handle(db: &DatabaseConnection, bus: &Bus, notice: Notice) -> Result<(), DbErr> {
    match notice {
        Notice::DeliveriesDue => bus.wake_worker(),
        Notice::Events(ids) if bus.has_event_subscribers() => {
            let events = event::Entity::find()
                .filter(event::Column::Id.is_in(ids))
                .order_by_asc(event::Column::Id)
                .all(db)
                .await?;
            bus.broadcast_events(events);
        }
        Notice::Attempts(ids) if bus.has_attempt_subscribers() => {
            let attempts = delivery_attempt::Entity::find()
                .filter(delivery_attempt::Column::Id.is_in(ids))
                .order_by_asc(delivery_attempt::Column::Id)
                .all(db)
                .await?;
            bus.broadcast_attempts(place_attempts(db, attempts).await?);
        }
        Notice::Deliveries(changes) if bus.has_delivery_subscribers() => {
            let rows: HashMap<DeliveryId, delivery::Model> = delivery::Entity::find()
                .filter(delivery::Column::Id.is_in(changes.iter().map(|c| c.id.as_str())))
                .all(db)
                .await?
                .into_iter()
                .map(|d| (d.id.clone(), d))
                .collect();
            // In the order the changes happened, each as it was then.
            bus.broadcast_deliveries(changes.iter().filter_map(|change| {
                let row = rows.get(&change.id)?.clone();
                Some(change.apply(row))
            }));
        }
        Notice::Resync { since_ms } => {
            bus.wake_worker();
            if bus.has_attempt_subscribers() {
                let missed: Vec<delivery_attempt::Model> = delivery_attempt::Entity::find()
                    .filter(delivery_attempt::Column::StartedAt.gte(since_ms))
                    .order_by_asc(delivery_attempt::Column::StartedAt)
                    .limit(RESYNC_LIMIT)
                    .all(db)
                    .await?
                    .into_iter()
                    .filter(|a| !bus.already_seen(a.id.as_str()))
                    .collect();
                bus.broadcast_attempts(place_attempts(db, missed).await?);
            }
            if bus.has_event_subscribers() {
                let missed: Vec<event::Model> = event::Entity::find()
                    .filter(event::Column::CreatedAt.gte(since_ms))
                    .order_by_asc(event::Column::Id)
                    .limit(RESYNC_LIMIT)
                    .all(db)
                    .await?
                    .into_iter()
                    .filter(|e| !bus.already_seen(e.id.as_str()))
                    .collect();
                bus.broadcast_events(missed);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Adds the delivery and event context a live attempt carries.
async fn place_attempts(
    db: &DatabaseConnection,
    attempts: Vec<delivery_attempt::Model>,
) -> Result<Vec<LiveAttempt>, DbErr> {
    if attempts.is_empty() {
        return Ok(Vec::new());
    }
    let deliveries: HashMap<DeliveryId, delivery::Model> = delivery::Entity::find()
        .filter(delivery::Column::Id.is_in(attempts.iter().map(|a| a.delivery_id.as_str())))
        .all(db)
        .await?
        .into_iter()
        .map(|d| (d.id.clone(), d))
        .collect();
    let types: HashMap<EventId, String> = event::Entity::find()
        .select_only()
        .columns([event::Column::Id, event::Column::EventType])
        .filter(event::Column::Id.is_in(deliveries.values().map(|d| d.event_id.as_str())))
        .into_tuple::<(EventId, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok(attempts
        .into_iter()
        .filter_map(|attempt| {
            let delivery = deliveries.get(&attempt.delivery_id)?;
            Some(LiveAttempt {
                event_type: types.get(&delivery.event_id).cloned().unwrap_or_default(),
                event_id: delivery.event_id.clone(),
                webhook_id: delivery.webhook_id.clone(),
                endpoint_id: delivery.endpoint_id.clone(),
                attempt,
            })
        })
        .collect())
}
