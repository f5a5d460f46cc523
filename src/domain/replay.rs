//! `replayWebhook`: sends a webhook, again, the events of a time window it
//! subscribes to, after an outage on the receiving side or once a paused
//! webhook is active again.
//!
//! The window's events are listed a page at a time on the reading
//! connections, without their bodies, filtered by the webhook's event types
//! in SQL and by its label filter here; only a filter on `data` reads
//! bodies, a few at a time (see `rows`). For each event and each endpoint,
//! what happened before decides: never sent (no delivery) is sent; a
//! settled delivery is sent again when its status was asked for (FAILED and
//! CANCELLED by default, SUCCEEDED too on request); an open one (PENDING,
//! RETRYING) is left to the worker. What happened before is read, and the
//! deliveries queued, on the writer. One call queues at most [`MAX_QUEUED`]
//! deliveries and reads at most [`MAX_SCANNED`] events; when it stops early
//! it says where to go on (`after`).

mod rows;
mod turns;

pub use turns::ReplayTurns;

use std::collections::HashMap;

use entity::delivery::{self, DeliveryStatus};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use self::rows::Wanted;
use super::{queue, targets::Target};
use crate::{
    error::{AppError, AppResult},
    ids::{EndpointId, EventId},
    time::now_ms,
};

/// Most deliveries one call queues.
pub const MAX_QUEUED: usize = 10_000;
/// Most events one call reads, matching or not.
pub const MAX_SCANNED: usize = 100_000;

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

/// Replays `request` for `target` (an active webhook of `tenant`) in the
/// tenant's turn from `turns`: the events are read through `read`, the
/// deliveries queued through `write`.
pub async fn replay(
    read: &DatabaseConnection,
    write: &DatabaseConnection,
    turns: &ReplayTurns,
    tenant: &str,
    target: &Target,
    request: &ReplayRequest,
) -> AppResult<Replayed> {
    request.check()?;
    let _turn = turns.take(tenant)?;
    let call = Call {
        write,
        tenant,
        target,
        request,
    };
    let mut done = Replayed::default();
    let mut cursor = request.after.clone();
    let mut scanned = 0;
    loop {
        let page = rows::read_page(read, tenant, target, request, cursor.as_deref()).await?;
        let Some(last) = page.last() else {
            return Ok(done);
        };
        let last_id = last.id.to_string();
        let last_page = (page.len() as u64) < rows::PAGE;
        scanned += page.len();
        let wanted = rows::wanted(read, tenant, target, page).await?;
        let whole = call.queue_page(&wanted, cursor.as_deref(), &mut done);
        if !whole.await? {
            return Ok(done);
        }
        cursor = Some(last_id);
        if last_page {
            return Ok(done);
        }
        if scanned >= MAX_SCANNED {
            done.after = cursor;
            return Ok(done);
        }
    }
}

/// What one replay call queues with.
struct Call<'a> {
    write: &'a DatabaseConnection,
    tenant: &'a str,
    target: &'a Target,
    request: &'a ReplayRequest,
}

impl Call<'_> {
    /// Queues what the `wanted` events of one page need and adds it to
    /// `done`; `cursor` is the last event of the page before (`None`: the
    /// first). Answers `false` when [`MAX_QUEUED`] stopped it, with
    /// `done.after` set to the last event it went through.
    async fn queue_page(
        &self,
        wanted: &[Wanted],
        cursor: Option<&str>,
        done: &mut Replayed,
    ) -> AppResult<bool> {
        let (db, tenant, target) = (self.write, self.tenant, self.target);
        let now = now_ms();
        let before = previous_statuses(db, target, wanted).await?;
        let mut queued = Vec::new();
        for (index, event) in wanted.iter().enumerate() {
            if queued.len() + target.endpoint_ids.len() > MAX_QUEUED - done.queued {
                // Resume with this event: the ones before it are done.
                done.after = index
                    .checked_sub(1)
                    .map(|previous| wanted[previous].id.to_string())
                    .or(cursor.map(str::to_owned));
                done.queued += enqueue(db, queued).await?;
                return Ok(false);
            }
            done.events += 1;
            for endpoint_id in &target.endpoint_ids {
                let previous = before.get(&(event.id.clone(), endpoint_id.clone()));
                let send = match previous {
                    None => true,
                    Some(status) => self.request.statuses.contains(status),
                };
                if send {
                    let delivery =
                        target.delivery(tenant, &event.id, &event.labels, endpoint_id, now);
                    queued.push(delivery);
                } else {
                    done.skipped += 1;
                }
            }
        }
        done.queued += enqueue(db, queued).await?;
        Ok(true)
    }
}

/// Inserts the replay's new deliveries (those whose endpoint still exists)
/// and says how many.
async fn enqueue(db: &DatabaseConnection, queued: Vec<delivery::Model>) -> AppResult<usize> {
    Ok(queue::enqueue_to_existing(db, queued).await?.len())
}

/// The status of the latest delivery of each (event, endpoint) of this
/// webhook, for the events of one page. Read on the writer, as every read
/// that decides a change is: it decides what is queued.
async fn previous_statuses(
    db: &DatabaseConnection,
    target: &Target,
    events: &[Wanted],
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
