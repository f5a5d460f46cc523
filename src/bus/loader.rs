//! Turns news known by id into rows for local subscribers: delivery status
//! changes, and whatever other instances report through the relay. News it
//! could not read, and news this instance did not hear, is re-read (see
//! `bus::resync`).

use std::{collections::HashMap, sync::Arc};

use entity::{delivery, delivery_attempt, event};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::mpsc;

use super::{Bus, Notice, relay::SLACK_MS, resync};
use crate::{
    domain::facts::LiveAttempt,
    ids::{DeliveryId, EventId},
    time::now_ms,
};

pub async fn run(db: DatabaseConnection, bus: Arc<Bus>, mut notices: mpsc::Receiver<Notice>) {
    let mut resync = resync::Pending::new();
    loop {
        let notice = match resync.due() {
            Some(due) if due <= tokio::time::Instant::now() => {
                resync.run(&db, &bus).await;
                continue;
            }
            Some(due) => tokio::select! {
                notice = notices.recv() => notice,
                () = tokio::time::sleep_until(due) => continue,
            },
            None => notices.recv().await,
        };
        let Some(notice) = notice else {
            return;
        };
        // What a notice is about was committed a moment before it came.
        let heard_at = now_ms();
        if let Notice::Resync { since_ms } = notice {
            bus.wake_worker();
            resync.now(since_ms);
        } else {
            match handle(&db, &bus, notice).await {
                Ok(()) => resync.answered(),
                // A re-read from a little before it came finds it (and
                // whatever else fails to load until the database answers).
                Err(err) => resync.after_failure(heard_at - SLACK_MS, err),
            }
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
        _ => {}
    }
    Ok(())
}

/// Adds the delivery and event context a live attempt carries.
pub(super) async fn place_attempts(
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
