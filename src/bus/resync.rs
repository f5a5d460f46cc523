//! Catching up after this instance could not hear the others (its LISTEN
//! connection was down) or could not read what it heard (the database was
//! down): what happened meanwhile is re-read from the database and told to
//! this instance's subscribers, minus what they were told already.
//!
//! Attempts are re-read by when they finished (they are recorded then, and
//! a request may run for its whole timeout), events by when they were
//! made, and status changes are rebuilt from the attempts: what an attempt
//! changed is known from the attempt itself, even when later ones moved the
//! row on, and its delivery's row tells what an operator or the worker did
//! to it since without an attempt. Every read is a range of the primary
//! key, in the partitions that can hold it. A re-read that fails is made again with backoff, from the
//! earliest moment any re-read waiting asked for.

use std::{collections::HashMap, fmt::Display};

use entity::{
    delivery::{self, DeliveryStatus},
    delivery_attempt, event,
};
use migration::partitioning::id_floor;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, Order, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use tokio::time::{Duration, Instant};

use super::{Bus, loader::place_attempts};
use crate::{
    domain::{facts::DeliveryChange, retry::MAX_ENDPOINT_TIMEOUT},
    ids::DeliveryId,
    reconnect::Reconnect,
};

/// How soon a waiting re-read is made once a read works again.
const ANSWERED: Duration = Duration::from_secs(1);

/// Most rows of each kind one re-read returns (the oldest first).
const LIMIT: u64 = 10_000;

/// How long before it finished an attempt may have started: the longest
/// request timeout, and time to render and sign the request.
const LONGEST_ATTEMPT_MS: i64 = MAX_ENDPOINT_TIMEOUT.as_millis() as i64 + 5_000;

/// A re-read waiting to be made, or to be made again.
pub(super) struct Pending {
    /// Re-read from then on (epoch ms).
    since_ms: Option<i64>,
    due: Option<Instant>,
    backoff: Reconnect,
}

impl Pending {
    pub(super) fn new() -> Self {
        Self {
            since_ms: None,
            due: None,
            backoff: Reconnect::new("reading news for live subscribers"),
        }
    }

    /// Asks for what happened from `since_ms` on to be re-read now.
    pub(super) fn now(&mut self, since_ms: i64) {
        self.include(since_ms);
        self.due = Some(Instant::now());
    }

    /// Asks for a re-read from `since_ms` on after `err` made a read fail:
    /// once the backoff has passed. One already waiting keeps its time: every
    /// notice that fails while the database is down does not put it off.
    pub(super) fn after_failure(&mut self, since_ms: i64, err: impl Display) {
        self.include(since_ms);
        if self.due.is_none() {
            self.due = Some(Instant::now() + self.backoff.backoff(err));
        }
    }

    /// A read just worked: a re-read waiting is made within [`ANSWERED`],
    /// not after a backoff that grew while the database was down.
    pub(super) fn answered(&mut self) {
        if let Some(due) = self.due {
            self.due = Some(Ord::min(due, Instant::now() + ANSWERED));
        }
    }

    fn include(&mut self, since_ms: i64) {
        self.since_ms = Some(self.since_ms.map_or(since_ms, |s| Ord::min(s, since_ms)));
    }

    /// When the re-read waiting should be made, if one is.
    pub(super) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Makes the re-read waiting; if it fails, it waits again, for longer.
    pub(super) async fn run(&mut self, db: &DatabaseConnection, bus: &Bus) {
        let Some(since_ms) = self.since_ms else {
            self.due = None;
            return;
        };
        match catch_up(db, bus, since_ms).await {
            Ok(()) => {
                self.since_ms = None;
                self.due = None;
                self.backoff.succeeded();
            }
            Err(err) => self.due = Some(Instant::now() + self.backoff.backoff(err)),
        }
    }
}

/// Tells this instance's subscribers what happened from `since_ms` on that
/// they were not told yet.
async fn catch_up(db: &DatabaseConnection, bus: &Bus, since_ms: i64) -> Result<(), DbErr> {
    let to_changes = bus.has_delivery_subscribers();
    if to_changes || bus.has_attempt_subscribers() {
        let attempts = finished_since(db, since_ms).await?;
        if to_changes {
            let rows = changed_since(db, &attempts).await?;
            bus.broadcast_caught_up_deliveries(status_changes(&attempts, &rows, since_ms));
        }
        if bus.has_attempt_subscribers() {
            let missed: Vec<delivery_attempt::Model> = attempts
                .into_iter()
                .filter(|a| !bus.already_seen(a.id.as_str()))
                .collect();
            bus.broadcast_attempts(place_attempts(db, missed).await?);
        }
    }
    if bus.has_event_subscribers() {
        // An event's id is made with it: a range of the primary key.
        let missed: Vec<event::Model> = event::Entity::find()
            .filter(event::Column::Id.gte(id_floor("evt_", since_ms - 1_000)))
            .filter(event::Column::CreatedAt.gte(since_ms))
            .order_by_asc(event::Column::Id)
            .limit(LIMIT)
            .all(db)
            .await?
            .into_iter()
            .filter(|e| !bus.already_seen(e.id.as_str()))
            .collect();
        bus.broadcast_events(missed);
    }
    Ok(())
}

/// Attempts that finished from `since_ms` on, in the order they finished.
/// None started more than the longest attempt before, and an attempt's id,
/// made when its request ended, is no older than its start: a range of the
/// primary key, in the partitions that can hold it.
async fn finished_since(
    db: &DatabaseConnection,
    since_ms: i64,
) -> Result<Vec<delivery_attempt::Model>, DbErr> {
    let earliest_start = since_ms - LONGEST_ATTEMPT_MS;
    let finished = Expr::col(delivery_attempt::Column::StartedAt)
        .add(Expr::col(delivery_attempt::Column::DurationMs));
    delivery_attempt::Entity::find()
        .filter(delivery_attempt::Column::Id.gte(id_floor("att_", earliest_start)))
        .filter(delivery_attempt::Column::StartedAt.gte(earliest_start))
        .filter(finished.clone().gte(since_ms))
        .order_by(finished, Order::Asc)
        .order_by_asc(delivery_attempt::Column::Id)
        .limit(LIMIT)
        .all(db)
        .await
}

/// The deliveries `attempts` were made for, as they are now.
///
/// Deliveries changed meanwhile without an attempt (an operator's cancel or
/// retry, a paused webhook's deliveries cancelled) are not looked for:
/// `updated_at` has no index (a settlement rewrites its row in place only
/// while no indexed column changes), so finding them would read every
/// delivery of every partition kept, on a database that has just come back,
/// by every instance at once, and again after each timeout.
async fn changed_since(
    db: &DatabaseConnection,
    attempts: &[delivery_attempt::Model],
) -> Result<HashMap<DeliveryId, delivery::Model>, DbErr> {
    let mut rows: HashMap<DeliveryId, delivery::Model> = HashMap::new();
    let mut ids: Vec<&str> = attempts.iter().map(|a| a.delivery_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(500) {
        let more = delivery::Entity::find()
            .filter(delivery::Column::Id.is_in(chunk.iter().copied()))
            .all(db)
            .await?;
        rows.extend(more.into_iter().map(|d| (d.id.clone(), d)));
    }
    Ok(rows)
}

/// The status changes `attempts` (oldest first) and the deliveries changed
/// from `since_ms` on show, each as the delivery was right after it, in the
/// order they happened, as the recorder and the operations that tell them
/// would have: what each attempt that is news changed its delivery to
/// (see [`DeliveryChange::is_news`]), then each row's status unless its
/// last attempt explains it. Rows never attempted and still PENDING are left
/// out: they were made, or made due in their ordered sequence, not changed.
fn status_changes(
    attempts: &[delivery_attempt::Model],
    rows: &HashMap<DeliveryId, delivery::Model>,
    since_ms: i64,
) -> Vec<delivery::Model> {
    let mut changes: Vec<(i64, delivery::Model)> = Vec::new();
    let mut explained: HashMap<&DeliveryId, (DeliveryStatus, i32)> = HashMap::new();
    for attempt in attempts {
        let Some(row) = rows.get(&attempt.delivery_id) else {
            continue;
        };
        let change = DeliveryChange::of_attempt(attempt);
        explained.insert(
            &attempt.delivery_id,
            (change.status, attempt.attempt_number),
        );
        if DeliveryChange::is_news(attempt.attempt_number, change.status) {
            let finished = attempt.started_at + i64::from(attempt.duration_ms);
            changes.push((finished, change.apply(row.clone())));
        }
    }
    for row in rows.values() {
        let by_attempt = explained.get(&row.id) == Some(&(row.status, row.attempt_count));
        let made = row.status == DeliveryStatus::Pending && row.attempt_count == 0;
        if row.updated_at >= since_ms && !by_attempt && !made {
            changes.push((row.updated_at, row.clone()));
        }
    }
    // Stable: one delivery's changes at the same moment keep their order.
    changes.sort_by_key(|(at, _)| *at);
    changes.into_iter().map(|(_, row)| row).collect()
}

#[cfg(test)]
mod tests {
    use entity::delivery_attempt::AttemptOutcome;

    use super::*;

    #[test]
    fn a_waiting_re_read_is_not_put_off_by_failures_and_comes_soon_once_reads_work() {
        let mut pending = Pending::new();
        pending.after_failure(5_000, "down");
        let first = pending.due().expect("waiting");
        pending.after_failure(1_000, "still down");
        assert_eq!(pending.due(), Some(first), "not put off");
        assert_eq!(pending.since_ms, Some(1_000), "from the earliest");
        pending.answered();
        assert!(pending.due().expect("waiting") <= Instant::now() + ANSWERED);
    }
    use crate::ids::{AttemptId, EndpointId, EventId, WebhookId};

    const SINCE: i64 = 1_000_000;

    fn row(status: DeliveryStatus, attempt_count: i32, updated_at: i64) -> delivery::Model {
        delivery::Model {
            id: DeliveryId::new(),
            tenant_id: "acme".into(),
            event_id: EventId::new(),
            webhook_id: WebhookId::new(),
            endpoint_id: EndpointId::new(),
            status,
            attempt_count,
            next_attempt_at: None,
            last_attempt_at: None,
            last_response_status: None,
            created_at: SINCE - 60_000,
            updated_at,
            recovery_job_id: None,
            ordering_key: None,
            ordering_seq: 0,
        }
    }

    fn attempt(
        of: &delivery::Model,
        number: i32,
        ok: bool,
        started_at: i64,
    ) -> delivery_attempt::Model {
        delivery_attempt::Model {
            id: AttemptId::new(),
            tenant_id: "acme".into(),
            delivery_id: of.id.clone(),
            attempt_number: number,
            endpoint_url: "http://127.0.0.1/hook".into(),
            outcome: if ok {
                AttemptOutcome::Succeeded
            } else {
                AttemptOutcome::Failed
            },
            started_at,
            duration_ms: 100,
            response_status: Some(if ok { 200 } else { 500 }),
            response_body: None,
            error_kind: None,
            error_message: None,
            next_attempt_at: (!ok).then_some(started_at + 1_000),
            instance_id: None,
            endpoint_id: None,
        }
    }

    fn told(changes: &[delivery::Model]) -> Vec<(DeliveryId, DeliveryStatus, i32)> {
        changes
            .iter()
            .map(|d| (d.id.clone(), d.status, d.attempt_count))
            .collect()
    }

    #[test]
    fn every_status_an_attempt_changed_is_told_even_when_the_row_moved_on() {
        let delivery = row(DeliveryStatus::Succeeded, 3, SINCE + 5_000);
        let attempts = [
            attempt(&delivery, 1, false, SINCE + 1_000),
            attempt(&delivery, 2, false, SINCE + 2_000),
            attempt(&delivery, 3, true, SINCE + 3_000),
        ];
        let rows = HashMap::from([(delivery.id.clone(), delivery.clone())]);
        let id = delivery.id.clone();
        assert_eq!(
            told(&status_changes(&attempts, &rows, SINCE)),
            [
                (id.clone(), DeliveryStatus::Retrying, 1),
                (id, DeliveryStatus::Succeeded, 3),
            ],
            "a retry in between leaves it RETRYING: no news"
        );
    }

    #[test]
    fn a_change_without_an_attempt_is_told_from_the_row_after_the_attempts() {
        let cancelled = row(DeliveryStatus::Cancelled, 1, SINCE + 9_000);
        let retried = row(DeliveryStatus::Retrying, 4, SINCE + 8_000);
        let made = row(DeliveryStatus::Pending, 0, SINCE + 7_000);
        let attempts = [attempt(&cancelled, 1, false, SINCE + 1_000)];
        let rows: HashMap<_, _> = [&cancelled, &retried, &made]
            .into_iter()
            .map(|d| (d.id.clone(), d.clone()))
            .collect();
        assert_eq!(
            told(&status_changes(&attempts, &rows, SINCE)),
            [
                (cancelled.id.clone(), DeliveryStatus::Retrying, 1),
                (retried.id.clone(), DeliveryStatus::Retrying, 4),
                (cancelled.id.clone(), DeliveryStatus::Cancelled, 1),
            ]
        );
    }

    #[test]
    fn an_attempt_that_started_before_the_outage_is_told_by_when_it_finished() {
        let delivery = row(DeliveryStatus::Succeeded, 1, SINCE + 2_000);
        let mut slow = attempt(&delivery, 1, true, SINCE - 25_000);
        slow.duration_ms = 26_000;
        let rows = HashMap::from([(delivery.id.clone(), delivery.clone())]);
        let changes = status_changes(std::slice::from_ref(&slow), &rows, SINCE);
        assert_eq!(
            told(&changes),
            [(delivery.id, DeliveryStatus::Succeeded, 1)]
        );
        assert_eq!(changes[0].last_attempt_at, Some(SINCE - 25_000));
    }

    #[test]
    fn pending_reads_again_from_the_earliest_moment_asked_for() {
        let mut pending = Pending::new();
        pending.after_failure(SINCE, "down");
        pending.now(SINCE + 5_000);
        pending.after_failure(SINCE + 9_000, "down");
        assert_eq!(pending.since_ms, Some(SINCE));
        assert!(pending.due().is_some_and(|due| due <= Instant::now()));
    }
}
