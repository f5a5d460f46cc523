//! The deliveries table as a queue, and the only code that writes a
//! delivery's status, claim (`claim_token`, `claimed_by`) and schedule
//! (`next_attempt_at`). Every change is one named transition:
//!
//! | transition | from | to | made by |
//! |---|---|---|---|
//! | [`enqueue`] | (new row, [`new_delivery`]) | PENDING, due now | publishing, resend, replay, test pings |
//! | [`enqueue_json`] | as [`enqueue`], inside a larger PostgreSQL statement | as [`enqueue`] / [`hold_new`] | publishing's one-statement commit |
//! | [`hold_new`] | (new row, before [`enqueue`]) | PENDING, held under a lease from birth | publishing, for the intake that took it |
//! | [`in_sequence`] | (new row of an ordered webhook, before [`enqueue`]) | PENDING, parked: not due until promoted | publishing, replay, resend |
//! | [`promote`] ([`promote_stranded`]) | parked, the first open one of its sequence | due now | after any commit that may have made it first |
//! | [`claim_due`] | open, due, not held | held under a lease by one claim token | the delivery worker |
//! | [`settle`] ([`settle_json`]) | held by this token (so open) | the status an attempt decided, not held | the recorder |
//! | [`release`] | held by this token | due now, not held | the worker (shutdown, waited too long) |
//! | [`cancel_claimed`] | held by this token | CANCELLED | the worker (webhook no longer active) |
//! | [`reschedule`] | any | open, due now, not held | an operator's `retryDelivery` |
//! | [`requeue`] | settled with one of the statuses asked for | open, due now, not held, stamped with its recovery job | a recovery job |
//! | [`cancel`] | open | CANCELLED | an operator's `cancelDelivery` |
//! | [`reap`] | held by a dead instance | due now, not held | the instances' heartbeat |
//!
//! "Open" (still to be delivered) is PENDING or RETRYING: [`OPEN`], and
//! [`OPEN_SQL`] for hand-written statements.
//!
//! Deliveries of an ordered webhook form sequences (one per endpoint and
//! ordering key). Only the first open one of a sequence is due; the others
//! are *parked* (PENDING with no `next_attempt_at`), so a long sequence
//! waiting behind its head costs claims nothing. Whoever commits a change
//! that may have made a parked delivery first (a publish, a settled or
//! cancelled head) promotes it right after the commit; [`promote_stranded`]
//! catches what a crash between the two left parked. The claim itself
//! still checks that a delivery is its sequence's head ([`claim_due`]), so
//! order holds even when two publishes race to promote.
//!
//! A claim moves `next_attempt_at` to the end of the lease and stamps a claim
//! token, in one statement: PostgreSQL skips rows other instances hold
//! (`FOR UPDATE SKIP LOCKED`); SQLite has a single writer, so its
//! `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING` is atomic as it is. If
//! the instance dies, the rows fall due again when the lease runs out (or
//! when [`reap`] finds its heartbeat stale). Transitions out of a claim match
//! the claim token, so a claim that ran out and was taken by someone else is
//! never settled by its first holder.

use std::collections::HashMap;

use entity::{
    delivery::{self, DeliveryStatus},
    event,
};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, Statement,
    UpdateMany, Value,
    sea_query::Expr,
};

mod pg_json;
mod requeue;
mod sequences;

pub use pg_json::{
    SETTLEMENT_JSON_BYTES, enqueue_json, enqueue_json_rows, id_list, settle_json, settle_rows,
};
pub use requeue::requeue;
pub use sequences::{Sequence, in_sequence, promote, promote_stranded, sequences_of};

use crate::{
    db::{chunks_by_size, placeholders, statement},
    ids::{DeliveryId, EndpointId, EventId, InstanceId, WebhookId},
};

/// The statuses of a delivery still to be made.
pub const OPEN: [DeliveryStatus; 2] = [DeliveryStatus::Pending, DeliveryStatus::Retrying];
/// [`OPEN`] as SQL, for statements written by hand.
pub const OPEN_SQL: &str = "status IN ('PENDING', 'RETRYING')";

/// Rows per INSERT at most: keeps every statement under SQLite's and
/// PostgreSQL's bound-parameter limits (and see `db::STATEMENT_BYTES`).
const INSERT_CHUNK: usize = 500;
/// Roughly what one delivery row's parameters weigh on the wire.
pub(crate) const DELIVERY_ROW_BYTES: usize = 200;

/// A delivery of `event` to one endpoint, due at `now`: the state every
/// delivery starts in.
pub fn new_delivery(
    event: &event::Model,
    webhook_id: &WebhookId,
    endpoint_id: &EndpointId,
    now: i64,
) -> delivery::Model {
    delivery::Model {
        id: DeliveryId::new(),
        tenant_id: event.tenant_id.clone(),
        event_id: event.id.clone(),
        webhook_id: webhook_id.clone(),
        endpoint_id: endpoint_id.clone(),
        status: DeliveryStatus::Pending,
        attempt_count: 0,
        next_attempt_at: Some(now),
        claim_token: None,
        claimed_by: None,
        last_attempt_at: None,
        last_response_status: None,
        created_at: now,
        updated_at: now,
        recovery_job_id: None,
        ordering_key: None,
        ordering_seq: 0,
    }
}

/// Inserts new deliveries (made by [`new_delivery`]).
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    deliveries: &[delivery::Model],
) -> Result<(), DbErr> {
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
            claim_token: Set(m.claim_token),
            claimed_by: Set(m.claimed_by),
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
/// (`ordering_seq`, then id) is still open. So one delivery per sequence is
/// attempted at a time, in publish order; one that is retrying holds back
/// its sequence alone, and one that fails for good or is cancelled lets the
/// next go. PostgreSQL: a head another claimer holds is skipped, and the
/// rest of its sequence is not a head.
pub async fn claim_due<C: ConnectionTrait>(
    db: &C,
    limit: u64,
    busy: &[EndpointId],
    claim: &ClaimStamp<'_>,
) -> Result<Vec<Claimed>, DbErr> {
    let backend = db.get_database_backend();
    let mut values = stamp_values(claim);
    values.push((limit as i64).into());
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
        "UPDATE deliveries SET next_attempt_at = $1, claim_token = $2, updated_at = $3, claimed_by = $4 \
         WHERE id IN (SELECT id FROM deliveries d \
             WHERE {OPEN_SQL} AND next_attempt_at <= $3{excluded} \
             AND (ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries o \
                 WHERE o.endpoint_id = d.endpoint_id AND o.ordering_key = d.ordering_key \
                 AND o.{OPEN_SQL} AND o.id <> d.id \
                 AND (o.ordering_seq < d.ordering_seq \
                     OR (o.ordering_seq = d.ordering_seq AND o.id < d.id) \
                     OR (o.claim_token IS NOT NULL AND o.next_attempt_at > $3)))) \
             ORDER BY next_attempt_at LIMIT $5{lock}) \
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

/// A new delivery, before [`enqueue`], held from birth by `claim`: the
/// claimer took it at its commit (see `domain::intake`), so no claim is
/// written afterwards. Its lease runs as a claimed row's does.
pub fn hold_new(delivery: &mut delivery::Model, claim: &ClaimStamp<'_>) {
    delivery.next_attempt_at = Some(claim.lease_until);
    delivery.claim_token = Some(claim.token);
    delivery.claimed_by = Some(claim.instance.clone());
    delivery.updated_at = claim.now;
}

fn stamp_values(claim: &ClaimStamp<'_>) -> Vec<Value> {
    vec![
        claim.lease_until.into(),
        claim.token.into(),
        claim.now.into(),
        claim.instance.as_str().into(),
    ]
}

/// When the next open delivery falls due (epoch ms), if any is open.
pub async fn next_due<C: ConnectionTrait>(db: &C) -> Result<Option<i64>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT MIN(next_attempt_at) AS due FROM deliveries WHERE {OPEN_SQL}"),
        ))
        .await?;
    Ok(row.and_then(|r| r.try_get::<Option<i64>>("", "due").ok().flatten()))
}

/// What an attempt decided for its delivery.
#[derive(Clone, Debug)]
pub struct Settlement<'a> {
    pub delivery_id: &'a DeliveryId,
    pub claim_token: i64,
    pub status: DeliveryStatus,
    pub attempt_number: i32,
    /// Set when the delivery is retried.
    pub next_attempt_at: Option<i64>,
    pub attempted_at: i64,
    pub response_status: Option<i32>,
}

/// Records each attempt's outcome on its delivery, in one statement per
/// chunk, unless the claim is no longer the attempt's (the lease ran out
/// and another worker took it, or an operator cancelled or retried it).
pub async fn settle<C: ConnectionTrait>(
    db: &C,
    settlements: &[Settlement<'_>],
    now: i64,
) -> Result<(), DbErr> {
    for chunk in chunks_by_size(settlements, 500, |_| 120) {
        let mut values: Vec<Value> = Vec::with_capacity(1 + chunk.len() * SETTLE_COLUMNS);
        values.push(now.into());
        for settled in chunk {
            values.extend([
                Value::from(settled.delivery_id.as_str()),
                Value::from(settled.claim_token),
                Value::from(sea_orm::ActiveEnum::to_value(&settled.status)),
                Value::from(settled.attempt_number),
                Value::from(settled.next_attempt_at),
                Value::from(settled.attempted_at),
                Value::from(settled.response_status),
            ]);
        }
        let sql = settle_sql(chunk.len());
        db.execute_raw(statement(db.get_database_backend(), &sql, values))
            .await?;
    }
    Ok(())
}

/// Parameters per row of [`settle_sql`].
const SETTLE_COLUMNS: usize = 7;

/// The statement [`settle`] runs for `rows` settlements: `$1` is the time,
/// then per row (delivery id, claim token, status, attempt number, next
/// attempt, attempted at, response status).
///
/// A row is matched by its id and its claim token alone. A claim token is
/// only ever on an open delivery (every transition to a closed status
/// clears it in the same statement), so the token is the "still open and
/// still ours" check. Adding the status as a condition changed nothing it
/// matched but let PostgreSQL drive the update from the open-deliveries
/// index: right after a burst, when its statistics still counted few open
/// rows, it hashed every open delivery (20 000 in the 10-endpoint
/// benchmark) to settle a hundred, 10 to 30 ms a statement instead of a
/// hundred primary-key lookups.
///
/// SQLite and PostgreSQL both name the columns of a VALUES list column1,
/// column2, ... (A JSON recordset form, [`settle_json`], carries ~60 rows
/// per statement within the byte bound against ~100 here: in the batched
/// benchmark's 10-endpoint run it made PostgreSQL settle in twice as many
/// statements, each as costly, and halved throughput. It is used only
/// inside the recorder's one statement for small batches.)
pub fn settle_sql(rows: usize) -> String {
    let rows: Vec<String> = (0..rows)
        .map(|index| {
            format!(
                "({})",
                placeholders(2 + index * SETTLE_COLUMNS, SETTLE_COLUMNS)
            )
        })
        .collect();
    format!(
        "UPDATE deliveries SET status = v.column3, attempt_count = v.column4, \
             next_attempt_at = v.column5, last_attempt_at = v.column6, \
             last_response_status = v.column7, claim_token = NULL, claimed_by = NULL, updated_at = $1 \
         FROM (VALUES {}) AS v \
         WHERE deliveries.id = v.column1 AND deliveries.claim_token = v.column2",
        rows.join(", ")
    )
}

/// Hands claimed deliveries back: due again at `now`, not held.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    rows: &[(DeliveryId, i64)],
    now: i64,
) -> Result<(), DbErr> {
    let mut by_token: HashMap<i64, Vec<&str>> = HashMap::new();
    for (id, token) in rows {
        by_token.entry(*token).or_default().push(id.as_str());
    }
    for (token, ids) in by_token {
        unclaimed(Some(now), now)
            .filter(delivery::Column::Id.is_in(ids))
            .filter(delivery::Column::ClaimToken.eq(token))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Cancels a delivery the worker holds and will not attempt (its webhook
/// is no longer active).
pub async fn cancel_claimed<C: ConnectionTrait>(
    db: &C,
    delivery_id: &DeliveryId,
    token: i64,
    now: i64,
) -> Result<(), DbErr> {
    unclaimed(None, now)
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Cancelled),
        )
        .filter(delivery::Column::Id.eq(delivery_id.as_str()))
        .filter(delivery::Column::ClaimToken.eq(token))
        .filter(delivery::Column::Status.is_in(OPEN))
        .exec(db)
        .await?;
    Ok(())
}

/// Makes a delivery due now, whatever its status: PENDING if it was never
/// attempted, RETRYING otherwise. Any claim on it ends. Returns whether the
/// row was there.
pub async fn reschedule<C: ConnectionTrait>(
    db: &C,
    current: &delivery::Model,
    now: i64,
) -> Result<bool, DbErr> {
    let status = if current.attempt_count == 0 {
        DeliveryStatus::Pending
    } else {
        DeliveryStatus::Retrying
    };
    let result = unclaimed(Some(now), now)
        .col_expr(delivery::Column::Status, Expr::value(status))
        .filter(delivery::Column::Id.eq(current.id.as_str()))
        .filter(delivery::Column::TenantId.eq(current.tenant_id.as_str()))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Stops an open delivery of the tenant. Returns whether it was open.
pub async fn cancel<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &DeliveryId,
    now: i64,
) -> Result<bool, DbErr> {
    let result = unclaimed(None, now)
        .col_expr(
            delivery::Column::Status,
            Expr::value(DeliveryStatus::Cancelled),
        )
        .filter(delivery::Column::Id.eq(id.as_str()))
        .filter(delivery::Column::TenantId.eq(tenant))
        .filter(delivery::Column::Status.is_in(OPEN))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Hands back the open deliveries held by instances found dead; returns how
/// many.
pub async fn reap<C: ConnectionTrait>(db: &C, dead: &[InstanceId], now: i64) -> Result<u64, DbErr> {
    if dead.is_empty() {
        return Ok(0);
    }
    Ok(unclaimed(Some(now), now)
        .filter(delivery::Column::ClaimedBy.is_in(dead.iter().map(InstanceId::as_str)))
        .filter(delivery::Column::Status.is_in(OPEN))
        .exec(db)
        .await?
        .rows_affected)
}

/// Whether a worker holds the delivery: it was claimed (a claim token) and
/// the lease has not run out.
pub fn in_flight(delivery: &delivery::Model, now: i64) -> bool {
    delivery.status.is_open()
        && delivery.claim_token.is_some()
        && delivery.next_attempt_at.is_some_and(|at| at > now)
}

/// An update that ends any claim on the deliveries it touches and makes them
/// due at `next_attempt_at` (`None`: settled). Callers add status and filters.
fn unclaimed(next_attempt_at: Option<i64>, now: i64) -> UpdateMany<delivery::Entity> {
    unclaimed_due(Expr::value(next_attempt_at), now)
}

/// [`unclaimed`], due at what `next_attempt_at` computes per row.
fn unclaimed_due(next_attempt_at: Expr, now: i64) -> UpdateMany<delivery::Entity> {
    delivery::Entity::update_many()
        .col_expr(delivery::Column::NextAttemptAt, next_attempt_at)
        .col_expr(
            delivery::Column::ClaimToken,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(
            delivery::Column::ClaimedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
}
