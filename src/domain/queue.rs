//! The queue: one row per open delivery in `delivery_queue`, and the only
//! code that writes it or a delivery's status and schedule, besides
//! deleting them with a removed webhook or endpoint (`super::removal`).
//! Every change is one named transition:
//!
//! | transition | from | to | made by |
//! |---|---|---|---|
//! | [`enqueue`] | (new delivery, [`new_delivery`]) | PENDING, queued due now | publishing, test pings; resend and replay through [`enqueue_to_existing`] |
//! | [`enqueue_json`] ([`enqueue_sqlite`]) | as [`enqueue`], inside a larger PostgreSQL statement (SQLite script) | as [`enqueue`] | publishing's one-statement commit |
//! | [`Holding`] | (new delivery, given to [`enqueue`]) | queued held under a lease from birth | publishing, for the intake that took it |
//! | [`in_sequence`] | (new delivery of an ordered webhook) | queued parked: not due until promoted | publishing, replay, resend |
//! | [`promote`] ([`promote_stranded`]) | parked, the first of its sequence | due now | after any commit that may have made it first |
//! | [`claim_due`] | queued, due, not held | held under a lease by one claim token | the delivery worker |
//! | [`settle`] ([`settle_json`], [`dequeue_sqlite`] for closed ones) | held by this token | the status an attempt decided: out of the queue, or queued for a retry | the recorder |
//! | [`release`] | held by this token | due now, not held | the worker (shutdown, waited too long) |
//! | [`cancel_claimed`] | held by this token | CANCELLED, out of the queue | the worker (webhook no longer active) |
//! | [`reschedule`] | any | open, queued due now, not held | an operator's `retryDelivery` |
//! | [`requeue`] | settled with one of the statuses asked for | open, queued due now, stamped with its recovery job | a recovery job |
//! | [`cancel`] | open | CANCELLED, out of the queue | an operator's `cancelDelivery` |
//! | [`reap`] | held by a dead instance | due now, not held | the instances' heartbeat |
//!
//! A delivery is open (PENDING or RETRYING, [`OPEN`]) exactly while it has
//! a queue row. A transition that changes both writes them in one
//! transaction, and one that starts from an existing queue row (a claim
//! settled, released or cancelled; an operator's cancel) changes that row
//! first, so two writers of one delivery meet on its lock. Promotion alone
//! writes the delivery's `next_attempt_at` after the queue row, outside any
//! transaction: it is there to be shown.
//! The delivery's own row (its log entry: status, attempts, when the next
//! one is due) is written when it is made and when something settles it;
//! a claim writes only the queue row. The queue's indexes are as large as
//! the backlog, not as the history: claiming costs the same under a week of
//! a hundred million deliveries as under none.
//!
//! Deliveries of an ordered webhook form sequences (one per endpoint and
//! ordering key). Only the first queued one of a sequence is due; the
//! others are *parked* (no `due_at`), so a long sequence waiting behind its
//! head costs claims nothing. Whoever commits a change that may have made a
//! parked delivery first (a publish, a settled or cancelled head) promotes
//! it right after the commit; [`promote_stranded`] catches what a crash
//! between the two left parked. The claim itself still checks that a
//! delivery is its sequence's head ([`claim_due`]), so order holds even
//! when two publishes race to promote.
//!
//! A claim moves `due_at` to the end of the lease and stamps a claim token,
//! in one statement: PostgreSQL skips rows other instances hold (`FOR
//! UPDATE SKIP LOCKED`); SQLite has a single writer, so its `UPDATE … WHERE
//! id IN (SELECT … LIMIT n) RETURNING` is atomic as it is. If the instance
//! dies, the rows fall due again when the lease runs out (or when [`reap`]
//! finds its heartbeat stale). Transitions out of a claim match the claim
//! token, so a claim that ran out and was taken by someone else is never
//! settled by its first holder.

use std::collections::HashSet;

use entity::{
    delivery::{self, DeliveryStatus},
    event,
};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, Statement,
    TransactionTrait, Value,
};

mod json;
mod operator;
mod requeue;
mod sequences;
mod settle;

pub use json::{
    SETTLEMENT_JSON_BYTES, dequeue_sqlite, enqueue_json, enqueue_json_rows, enqueue_sqlite,
    id_list, settle_json, settle_rows,
};
pub use operator::{cancel, held, reap, reschedule};
pub use requeue::requeue;
pub use sequences::{Sequence, in_sequence, promote, promote_stranded, sequences_of};
pub use settle::{Settlement, cancel_claimed, release, settle, settle_sql};

use crate::{
    db::{chunks_by_size, placeholders, returned_ids, statement, tuples},
    ids::{DeliveryId, EndpointId, EventId, InstanceId, WebhookId},
};

/// The statuses of a delivery still to be made: those with a queue row.
pub const OPEN: [DeliveryStatus; 2] = [DeliveryStatus::Pending, DeliveryStatus::Retrying];

/// Rows per INSERT at most: keeps every statement under SQLite's and
/// PostgreSQL's bound-parameter limits (and see `db::STATEMENT_BYTES`).
const INSERT_CHUNK: usize = 500;
/// Roughly what one delivery row's parameters weigh on the wire.
pub(crate) const DELIVERY_ROW_BYTES: usize = 200;
/// The columns a new queue row is given (`ordering_seq` is the database's
/// default, as the delivery's is).
const QUEUE_COLUMNS: &str = "id, tenant_id, event_id, webhook_id, endpoint_id, attempt_count, \
                             due_at, claim_token, claimed_by, ordering_key";
const QUEUE_COLUMN_COUNT: usize = 10;

/// A delivery of `event` to one endpoint, due at `now`: the state every
/// delivery starts in.
pub fn new_delivery(
    event: &event::Model,
    webhook_id: &WebhookId,
    endpoint_id: &EndpointId,
    now: i64,
) -> delivery::Model {
    new_delivery_of(&event.tenant_id, &event.id, webhook_id, endpoint_id, now)
}

/// [`new_delivery`] of an event known by its tenant and id: what a
/// delivery keeps of it (replay reads no more).
pub fn new_delivery_of(
    tenant: &str,
    event_id: &EventId,
    webhook_id: &WebhookId,
    endpoint_id: &EndpointId,
    now: i64,
) -> delivery::Model {
    delivery::Model {
        id: DeliveryId::new(),
        tenant_id: tenant.to_owned(),
        event_id: event_id.clone(),
        webhook_id: webhook_id.clone(),
        endpoint_id: endpoint_id.clone(),
        status: DeliveryStatus::Pending,
        attempt_count: 0,
        next_attempt_at: Some(now),
        last_attempt_at: None,
        last_response_status: None,
        created_at: now,
        updated_at: now,
        recovery_job_id: None,
        ordering_key: None,
        ordering_seq: 0,
    }
}

/// New deliveries taken at their commit: those of `ids` are queued held by
/// `stamp`'s claim (see `domain::intake`), so no claim is written for them
/// afterwards. Their lease runs as a claimed row's does.
#[derive(Clone, Copy, Debug)]
pub struct Holding<'a> {
    pub stamp: ClaimStamp<'a>,
    pub ids: &'a HashSet<DeliveryId>,
}

impl Holding<'_> {
    /// The queue row's (due at, claim token, holder) for `delivery`.
    fn claim_of<'d>(
        holding: Option<&'d Self>,
        delivery: &delivery::Model,
    ) -> (Option<i64>, Option<i64>, Option<&'d str>) {
        match holding {
            Some(h) if h.ids.contains(&delivery.id) => (
                Some(h.stamp.lease_until),
                Some(h.stamp.token),
                Some(h.stamp.instance.as_str()),
            ),
            _ => (delivery.next_attempt_at, None, None),
        }
    }
}

/// For resends and replays, which read their webhook before: in one
/// transaction, keeps the deliveries whose endpoint still exists
/// (`removal::keep_existing` says why), [`enqueue`]s them, then promotes
/// those first in their sequence. Returns what it enqueued.
pub async fn enqueue_to_existing(
    db: &DatabaseConnection,
    deliveries: Vec<delivery::Model>,
) -> Result<Vec<delivery::Model>, DbErr> {
    let txn = db.begin().await?;
    let deliveries = super::removal::keep_existing(&txn, deliveries).await?;
    enqueue(&txn, &deliveries, None).await?;
    txn.commit().await?;
    promote(db, &sequences_of(&deliveries), crate::time::now_ms()).await?;
    Ok(deliveries)
}

/// Inserts new deliveries (made by [`new_delivery`]) and queues them, those
/// `holding` names held by its claim. Call it inside a transaction: the two
/// inserts stand or fall together.
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    deliveries: &[delivery::Model],
    holding: Option<&Holding<'_>>,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    for chunk in chunks_by_size(deliveries, INSERT_CHUNK, |_| DELIVERY_ROW_BYTES) {
        let rows = chunk.iter().cloned().map(|m| delivery::ActiveModel {
            id: Set(m.id),
            tenant_id: Set(m.tenant_id),
            event_id: Set(m.event_id),
            webhook_id: Set(m.webhook_id),
            endpoint_id: Set(m.endpoint_id),
            status: Set(m.status),
            attempt_count: Set(m.attempt_count),
            next_attempt_at: Set(m.next_attempt_at),
            last_attempt_at: Set(m.last_attempt_at),
            last_response_status: Set(m.last_response_status),
            created_at: Set(m.created_at),
            updated_at: Set(m.updated_at),
            recovery_job_id: Set(m.recovery_job_id),
            ordering_key: Set(m.ordering_key),
            // The database's default: see the migration that added it.
            ordering_seq: NotSet,
        });
        delivery::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await?;
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * QUEUE_COLUMN_COUNT);
        for d in chunk {
            let (due_at, token, holder) = Holding::claim_of(holding, d);
            values.extend([
                Value::from(d.id.as_str()),
                Value::from(d.tenant_id.as_str()),
                Value::from(d.event_id.as_str()),
                Value::from(d.webhook_id.as_str()),
                Value::from(d.endpoint_id.as_str()),
                Value::from(d.attempt_count),
                Value::from(due_at),
                Value::from(token),
                Value::from(holder.map(str::to_owned)),
                Value::from(d.ordering_key.clone()),
            ]);
        }
        let sql = format!(
            "INSERT INTO delivery_queue ({QUEUE_COLUMNS}) VALUES {}",
            tuples(chunk.len(), QUEUE_COLUMN_COUNT, 1)
        );
        db.execute_raw(statement(backend, &sql, values)).await?;
    }
    Ok(())
}

/// A claimed delivery, before its details are loaded.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: DeliveryId,
    pub tenant_id: String,
    pub event_id: EventId,
    pub webhook_id: WebhookId,
    pub endpoint_id: EndpointId,
    pub attempt_count: i32,
    /// Its sequence's key when its webhook delivers in order (see
    /// [`claim_due`]).
    pub ordering_key: Option<String>,
}

/// Who claims, and until when.
#[derive(Clone, Copy, Debug)]
pub struct ClaimStamp<'a> {
    pub now: i64,
    /// End of the lease: the rows fall due again then, whatever happens.
    pub lease_until: i64,
    pub token: i64,
    pub instance: &'a InstanceId,
}

/// Claims up to `limit` due deliveries, oldest due first, leaving out the
/// `busy` endpoints.
///
/// A delivery of an ordered webhook is claimed only at the head of its
/// sequence (same endpoint, same `ordering_key`): when no delivery of the
/// sequence is held by a claim whose lease runs, and none before it
/// (`ordering_seq`, then id) is still queued. So one delivery per sequence
/// is attempted at a time, in publish order; one that is retrying holds
/// back its sequence alone, and one that fails for good or is cancelled
/// lets the next go. PostgreSQL: a head another claimer holds is skipped,
/// and the rest of its sequence is not a head.
pub async fn claim_due<C: ConnectionTrait>(
    db: &C,
    limit: u64,
    busy: &[EndpointId],
    claim: &ClaimStamp<'_>,
) -> Result<Vec<Claimed>, DbErr> {
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = vec![
        claim.lease_until.into(),
        claim.token.into(),
        claim.now.into(),
        claim.instance.as_str().into(),
        (limit as i64).into(),
    ];
    let excluded = if busy.is_empty() {
        String::new()
    } else {
        let first = values.len() + 1;
        values.extend(busy.iter().map(|id| Value::from(id.as_str())));
        format!(
            " AND endpoint_id NOT IN ({})",
            placeholders(first, busy.len())
        )
    };
    let lock = if backend == DbBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE delivery_queue SET due_at = $1, claim_token = $2, claimed_by = $4 \
         WHERE id IN (SELECT id FROM delivery_queue d \
             WHERE due_at <= $3{excluded} \
             AND (ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM delivery_queue o \
                 WHERE o.endpoint_id = d.endpoint_id AND o.ordering_key = d.ordering_key \
                 AND o.id <> d.id \
                 AND (o.ordering_seq < d.ordering_seq \
                     OR (o.ordering_seq = d.ordering_seq AND o.id < d.id) \
                     OR (o.claim_token IS NOT NULL AND o.due_at > $3)))) \
             ORDER BY due_at LIMIT $5{lock}) \
         RETURNING id, tenant_id, event_id, webhook_id, endpoint_id, attempt_count, ordering_key"
    );
    let rows = db.query_all_raw(statement(backend, &sql, values)).await?;
    rows.iter()
        .map(|row| {
            Ok(Claimed {
                id: row.try_get("", "id")?,
                tenant_id: row.try_get("", "tenant_id")?,
                event_id: row.try_get("", "event_id")?,
                webhook_id: row.try_get("", "webhook_id")?,
                endpoint_id: row.try_get("", "endpoint_id")?,
                attempt_count: row.try_get("", "attempt_count")?,
                ordering_key: row.try_get("", "ordering_key")?,
            })
        })
        .collect()
}

/// When the next queued delivery falls due (epoch ms), if any is.
pub async fn next_due<C: ConnectionTrait>(db: &C) -> Result<Option<i64>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT MIN(due_at) AS due FROM delivery_queue",
        ))
        .await?;
    Ok(row.and_then(|r| r.try_get::<Option<i64>>("", "due").ok().flatten()))
}

/// The queue rows of `ids` copied from their deliveries as they stand
/// (status, schedule, place in their sequence), not held; a row already
/// queued is made due again as its delivery says and its claim ends.
/// Used when an existing delivery is opened again.
async fn queue_from_deliveries<C: ConnectionTrait>(db: &C, ids: &[&str]) -> Result<(), DbErr> {
    for chunk in ids.chunks(INSERT_CHUNK) {
        let values: Vec<Value> = chunk.iter().map(|id| Value::from(*id)).collect();
        let sql = format!(
            "INSERT INTO delivery_queue (id, tenant_id, event_id, webhook_id, endpoint_id, \
               attempt_count, due_at, ordering_key, ordering_seq) \
             SELECT id, tenant_id, event_id, webhook_id, endpoint_id, attempt_count, \
               next_attempt_at, ordering_key, ordering_seq \
             FROM deliveries WHERE id IN ({}) \
             ON CONFLICT (id) DO UPDATE SET due_at = excluded.due_at, \
               attempt_count = excluded.attempt_count, claim_token = NULL, claimed_by = NULL",
            placeholders(1, chunk.len())
        );
        db.execute_raw(statement(db.get_database_backend(), &sql, values))
            .await?;
    }
    Ok(())
}
