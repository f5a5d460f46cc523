//! `replayWebhook`: sends a webhook, again, the events of a time window it
//! subscribes to, after an outage on the receiving side or once a paused
//! webhook is active again.
//!
//! The window's events are read a page at a time, filtered by the webhook's
//! event types in SQL and by its label filter here. For each event and each
//! endpoint, what happened before decides: never sent (no delivery) is sent;
//! a settled delivery is sent again when its status was asked for (FAILED
//! and CANCELLED by default, SUCCEEDED too on request); an open one
//! (PENDING, RETRYING) is left to the worker. One call queues at most
//! [`MAX_QUEUED`] deliveries and reads at most [`MAX_SCANNED`] events; when
//! it stops early it says where to go on (`after`).

use std::collections::HashMap;

use entity::{
    delivery::{self, DeliveryStatus},
    event,
};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{labels, patterns::Pattern, queue, targets::Target};
use crate::{
    error::{AppError, AppResult},
    ids::{EndpointId, EventId},
    time::now_ms,
};

/// Most deliveries one call queues.
pub const MAX_QUEUED: usize = 10_000;
/// Most events one call reads, matching or not.
pub const MAX_SCANNED: usize = 100_000;
/// Events read per query.
const PAGE: u64 = 500;

/// What to replay.
#[derive(Clone, Debug)]
pub struct ReplayRequest {
    /// Events created at or after this (epoch ms)...
    pub since: i64,
    /// ...and before this, when given.
    pub until: Option<i64>,
    /// Settled deliveries with these statuses are sent again.
    pub statuses: Vec<DeliveryStatus>,
    /// Resume after this event id (the `after` of an earlier call).
    pub after: Option<String>,
}

impl ReplayRequest {
    /// FAILED and CANCELLED: what did not arrive.
    pub const DEFAULT_STATUSES: [DeliveryStatus; 2] =
        [DeliveryStatus::Failed, DeliveryStatus::Cancelled];

    fn check(&self) -> AppResult<()> {
        if self.statuses.iter().any(|status| status.is_open()) {
            return Err(AppError::bad_input(
                "statuses",
                "PENDING and RETRYING deliveries are still being attempted; choose among SUCCEEDED, FAILED and CANCELLED",
            ));
        }
        if self.until.is_some_and(|until| until <= self.since) {
            return Err(AppError::bad_input("until", "must be after `since`"));
        }
        Ok(())
    }
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Deliveries queued.
    pub queued: usize,
    /// Events of the window the webhook subscribes to, read so far.
    pub events: usize,
    /// Deliveries left alone: open, or settled with a status not asked for.
    pub skipped: usize,
    /// Where to go on when the call stopped early (`None`: the window is done).
    pub after: Option<String>,
}

/// Replays `request` for `target` (an active webhook of `tenant`).
pub async fn replay(
    db: &DatabaseConnection,
    tenant: &str,
    target: &Target,
    request: &ReplayRequest,
) -> AppResult<Replayed> {
    request.check()?;
    let mut done = Replayed::default();
    let mut cursor = request.after.clone();
    let mut scanned = 0;
    loop {
        let page = read_page(db, tenant, target, request, cursor.as_deref()).await?;
        let Some(last) = page.last() else {
            return Ok(done);
        };
        let last_id = last.id.to_string();
        scanned += page.len();
        let wanted: Vec<&event::Model> = page.iter().filter(|e| target.wants_stored(e)).collect();
        let before = previous_statuses(db, target, &wanted).await?;
        let mut queued = Vec::new();
        for (index, event) in wanted.iter().enumerate() {
            if queued.len() + target.endpoint_ids.len() > MAX_QUEUED - done.queued {
                // Resume with this event: the ones before it are done.
                done.after = index
                    .checked_sub(1)
                    .map(|previous| wanted[previous].id.to_string())
                    .or(cursor.clone());
                done.queued += enqueue(db, queued).await?;
                return Ok(done);
            }
            done.events += 1;
            for endpoint_id in &target.endpoint_ids {
                let previous = before.get(&(event.id.clone(), endpoint_id.clone()));
                let send = match previous {
                    None => true,
                    Some(status) => request.statuses.contains(status),
                };
                if send {
                    let labels = labels::from_json(&event.labels);
                    queued.push(target.delivery(event, &labels, endpoint_id, now_ms()));
                } else {
                    done.skipped += 1;
                }
            }
        }
        done.queued += enqueue(db, queued).await?;
        cursor = Some(last_id);
        if (page.len() as u64) < PAGE {
            return Ok(done);
        }
        if scanned >= MAX_SCANNED {
            done.after = cursor;
            return Ok(done);
        }
    }
}

/// Inserts the replay's new deliveries (those whose endpoint still exists)
/// and says how many.
async fn enqueue(db: &DatabaseConnection, queued: Vec<delivery::Model>) -> AppResult<usize> {
    Ok(queue::enqueue_to_existing(db, queued).await?.len())
}

/// The next page of the window's events whose type the webhook may want.
async fn read_page(
    db: &DatabaseConnection,
    tenant: &str,
    target: &Target,
    request: &ReplayRequest,
    after: Option<&str>,
) -> AppResult<Vec<event::Model>> {
    let mut query = event::Entity::find()
        .filter(event::Column::TenantId.eq(tenant))
        .filter(event::Column::CreatedAt.gte(request.since))
        .filter(types_condition(&target.patterns));
    if let Some(until) = request.until {
        query = query.filter(event::Column::CreatedAt.lt(until));
    }
    if let Some(after) = after {
        query = query.filter(event::Column::Id.gt(after));
    }
    Ok(query
        .order_by_asc(event::Column::Id)
        .limit(PAGE)
        .all(db)
        .await?)
}

/// The event types `patterns` select, as a condition on the events table:
/// `offer.*` is the range of names from `offer.` up to `offer/` (`/` sorts
/// right after `.`), so no LIKE escaping and an index can serve it.
fn types_condition(patterns: &[Pattern]) -> Condition {
    let mut any = Condition::any();
    for pattern in patterns {
        any = match pattern {
            Pattern::All => return Condition::all(),
            Pattern::Object(object) => any.add(
                Condition::all()
                    .add(event::Column::EventType.gte(format!("{object}.")))
                    .add(event::Column::EventType.lt(format!("{object}/"))),
            ),
            Pattern::Exact(name) => any.add(event::Column::EventType.eq(name.as_str())),
        };
    }
    any
}

/// The status of the latest delivery of each (event, endpoint) of this
/// webhook, for the events of one page.
async fn previous_statuses(
    db: &DatabaseConnection,
    target: &Target,
    events: &[&event::Model],
) -> AppResult<HashMap<(EventId, EndpointId), DeliveryStatus>> {
    if events.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(EventId, EndpointId, DeliveryStatus)> = delivery::Entity::find()
        .select_only()
        .columns([
            delivery::Column::EventId,
            delivery::Column::EndpointId,
            delivery::Column::Status,
        ])
        .filter(delivery::Column::WebhookId.eq(target.webhook_id.as_str()))
        .filter(delivery::Column::EventId.is_in(events.iter().map(|e| e.id.as_str())))
        .order_by_asc(delivery::Column::CreatedAt)
        .order_by_asc(delivery::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    // Oldest first, so the latest delivery's status is the one kept.
    Ok(rows
        .into_iter()
        .map(|(event_id, endpoint_id, status)| ((event_id, endpoint_id), status))
        .collect())
}
