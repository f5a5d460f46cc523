//! Writes what the worker did, in batches: attempts, delivery outcomes and
//! endpoint health (`bookkeeping`), one short transaction per batch and never across
//! network I/O.
//!
//! If the database is unreachable the batch is retried until it lands; the
//! channel in front fills up and the worker stops claiming meanwhile. If the
//! process dies first, the deliveries' leases run out and they are attempted
//! again: at-least-once.

use std::{sync::Arc, time::Duration};

use entity::{delivery_attempt, event};
use sea_orm::{
    ActiveEnum, ActiveValue::Set, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    TransactionTrait, sea_query::OnConflict,
};
use tokio::sync::mpsc;

use super::bookkeeping::{self, HealthRules};
use crate::{
    db::{Kept, chunks_by_size, is_transaction_conflict},
    domain::{
        facts::{DeliveryChange, Facts, Wakeup, WritePath, Writer},
        queue::{self, Sequence, Settlement},
    },
    error::is_connection_error,
    ids::DeliveryId,
    metrics::Metrics,
    time::now_ms,
};

mod one_statement;
mod record;

pub use record::{AttemptRecord, Record};

/// Most records written in one transaction.
const MAX_BATCH: usize = 512;
/// A batch smaller than this waits up to [`GATHER_FOR`] for more records
/// before it is written: at a light load each attempt would otherwise cost a
/// transaction of its own (a commit, a WAL flush, the webhook's bookkeeping),
/// which under load many attempts share. The attempts are already made; only
/// their record (and live subscribers) waits.
const GATHER_BELOW: usize = 64;
const GATHER_FOR: Duration = Duration::from_millis(10);

/// What a committed batch changed.
struct Committed {
    attempts: Vec<AttemptRecord>,
    /// Deliveries cancelled because their webhook is no longer active.
    cancelled: Vec<DeliveryId>,
    /// Operational events the batch raised, with their deliveries' count.
    published: Vec<(event::Model, u64)>,
}

pub struct Recorder {
    db: DatabaseConnection,
    /// The connection batches of successes are written on, kept between them.
    kept: Kept,
    rules: HealthRules,
    /// Told what each batch changed, once it is committed.
    facts: Arc<dyn Facts>,
    metrics: Arc<Metrics>,
    /// The worker's, for retries due soon.
    wakeup: Wakeup,
}

impl Recorder {
    pub fn new(
        db: DatabaseConnection,
        rules: HealthRules,
        facts: Arc<dyn Facts>,
        metrics: Arc<Metrics>,
        wakeup: Wakeup,
    ) -> Self {
        Self {
            kept: Kept::new(&db, 1),
            db,
            rules,
            facts,
            metrics,
            wakeup,
        }
    }

    /// Runs until every sender is gone and the channel is drained.
    pub async fn run(self, mut rx: mpsc::Receiver<Record>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            // An ordered sequence waits for its head's record: no gathering.
            if batch.len() < GATHER_BELOW && !batch.iter().any(Record::is_ordered) {
                gather(&mut rx, &mut batch).await;
            }
            let published = self.write_until_it_lands(&batch).await;
            self.promote_next(&batch).await;
            let mut committed = Committed {
                attempts: Vec::new(),
                cancelled: Vec::new(),
                published,
            };
            for record in batch.drain(..) {
                match record {
                    Record::Attempt(attempt) => committed.attempts.push(*attempt),
                    Record::Cancel { delivery_id, .. } => committed.cancelled.push(delivery_id),
                    Record::Release { .. } => {}
                }
            }
            self.tell(committed);
        }
    }

    /// Makes due the next delivery of each ordered sequence the committed
    /// `batch` settled the head of, and wakes the worker for them. If this
    /// fails, the instances' sweep promotes them later.
    async fn promote_next(&self, batch: &[Record]) {
        let mut freed: Vec<Sequence> = batch.iter().filter_map(Record::frees).cloned().collect();
        if freed.is_empty() {
            return;
        }
        freed.sort();
        freed.dedup();
        match queue::promote(&self.db, &freed, now_ms()).await {
            Ok(0) => {}
            Ok(_) => self.wakeup.wake(),
            Err(err) => {
                tracing::warn!("promoting ordered deliveries failed; the sweep will: {err}")
            }
        }
    }

    /// What a committed batch changed: counted in the metrics, told to the
    /// port (attempts, and the deliveries whose status they changed), and
    /// retries due soon wake the worker.
    fn tell(&self, committed: Committed) {
        for record in &committed.attempts {
            let attempt = &record.live.attempt;
            let status =
                (!record.delivery_status.is_open()).then(|| record.delivery_status.to_value());
            self.metrics
                .attempt(attempt.error_kind, attempt.duration_ms, status.as_deref());
        }
        for _ in &committed.cancelled {
            self.metrics.finished("CANCELLED");
        }
        if committed
            .attempts
            .iter()
            .any(|r| r.live.attempt.next_attempt_at.is_some())
        {
            self.wakeup.wake();
        }
        let cancelled = committed
            .cancelled
            .into_iter()
            .map(DeliveryChange::cancelled);
        let attempted = committed
            .attempts
            .iter()
            .filter(|r| changes_status(r))
            .map(|r| DeliveryChange::after_attempt(&r.live.attempt, r.delivery_status));
        self.facts
            .deliveries_changed(cancelled.chain(attempted).collect());
        self.facts
            .attempts_recorded(committed.attempts.into_iter().map(|r| r.live).collect());
        for (event, deliveries) in committed.published {
            self.facts
                .published(std::slice::from_ref(&event), deliveries, deliveries);
            if deliveries > 0 {
                self.wakeup.wake();
            }
        }
    }

    /// Writes `batch`, retrying while the database is unavailable (the
    /// channel in front fills and the worker stops claiming meanwhile). A
    /// batch the database *refuses* is split in halves until the record it
    /// refuses is alone, so one bad row never holds back the others; that
    /// record is then written without what the receiver sent, or skipped.
    /// Returns the operational events the batch raised.
    async fn write_until_it_lands(&self, batch: &[Record]) -> Vec<(event::Model, u64)> {
        let mut published = Vec::new();
        let mut pending: Vec<&[Record]> = vec![batch];
        while let Some(part) = pending.pop() {
            match self.write_retrying(part).await {
                Ok(raised) => published.extend(raised),
                Err(err) if part.len() > 1 => {
                    tracing::debug!(records = part.len(), "splitting a refused batch: {err}");
                    let (left, right) = part.split_at(part.len() / 2);
                    pending.push(right);
                    pending.push(left);
                }
                Err(err) => published.extend(self.write_alone(&part[0], err).await),
            }
        }
        published
    }

    /// `write`, retried with backoff for as long as the database is
    /// unavailable; a refusal is returned at once.
    async fn write_retrying(&self, batch: &[Record]) -> Result<Vec<(event::Model, u64)>, DbErr> {
        let mut wait = Duration::from_millis(50);
        loop {
            match self.write(batch).await {
                Ok(published) => return Ok(published),
                // Unavailable, or aborted to break a deadlock with another
                // transaction (a webhook being deleted): nothing was
                // written, and the same batch lands later.
                Err(err) if is_connection_error(&err) || is_transaction_conflict(&err) => {
                    tracing::warn!(records = batch.len(), retry_in = ?wait, "could not record delivery attempts, retrying: {err}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// The one record of a batch the database refused: its attempt is
    /// stored without the receiver's body and with the refusal as its
    /// error, so the delivery still settles; if even that is refused, the
    /// record is skipped and its lease brings the delivery back.
    async fn write_alone(&self, record: &Record, refusal: DbErr) -> Vec<(event::Model, u64)> {
        let Record::Attempt(attempt) = record else {
            tracing::error!(
                "could not record a delivery's release or cancellation, skipping it (its lease brings it back): {refusal}"
            );
            return Vec::new();
        };
        let mut stripped = attempt.clone();
        stripped.live.attempt.response_body = None;
        stripped.live.attempt.error_message = Some(format!(
            "the attempt could not be stored as it was ({refusal}); stored without the response body"
        ));
        tracing::error!(
            delivery_id = %attempt.live.attempt.delivery_id,
            "the database refused an attempt record: {refusal}; storing it without the response body"
        );
        self.write_retrying(&[Record::Attempt(stripped)])
            .await
            .unwrap_or_else(|err| {
                tracing::error!(
                    delivery_id = %attempt.live.attempt.delivery_id,
                    "could not record the attempt at all, skipping it (its lease brings the delivery back): {err}"
                );
                Vec::new()
            })
    }

    async fn write(&self, batch: &[Record]) -> Result<Vec<(event::Model, u64)>, DbErr> {
        let now = now_ms();
        if let Some(attempts) = one_statement::suits(&self.db, batch) {
            match one_statement::write(
                &self.db,
                &self.kept,
                &attempts,
                self.rules.failing_after,
                now,
            )
            .await
            {
                Ok(failing) => {
                    self.metrics
                        .written(Writer::Recorder, WritePath::OneStatement);
                    if failing.is_empty() {
                        return Ok(Vec::new());
                    }
                    // Endpoints that were reported failing recover: their
                    // streak and the notice, in a transaction of their own.
                    return self.recover(&attempts, &failing, now).await;
                }
                Err(err) if is_connection_error(&err) => return Err(err),
                // Nothing was written: the transaction finds what it refuses.
                Err(err) => {
                    tracing::debug!("recording in one statement was refused: {err}");
                    self.metrics.written(Writer::Recorder, WritePath::Refused);
                }
            }
        }
        let txn = self.db.begin().await?;
        let attempts: Vec<&AttemptRecord> = batch
            .iter()
            .filter_map(|r| match r {
                Record::Attempt(a) => Some(a.as_ref()),
                _ => None,
            })
            .collect();
        insert_attempts(&txn, &attempts).await?;
        let settlements: Vec<Settlement> = attempts.iter().map(|r| settlement(r)).collect();
        queue::settle(&txn, &settlements, now).await?;
        let released: Vec<(DeliveryId, i64)> = batch
            .iter()
            .filter_map(|r| match r {
                Record::Release {
                    delivery_id,
                    claim_token,
                } => Some((delivery_id.clone(), *claim_token)),
                _ => None,
            })
            .collect();
        queue::release(&txn, &released, now).await?;
        for record in batch {
            if let Record::Cancel {
                delivery_id,
                claim_token,
                ..
            } = record
            {
                queue::cancel_claimed(&txn, delivery_id, *claim_token, now).await?;
            }
        }
        let published = bookkeeping::update(&txn, &attempts, self.rules, now).await?;
        txn.commit().await?;
        self.metrics
            .written(Writer::Recorder, WritePath::Transaction);
        Ok(published)
    }

    /// The health of `failing` endpoints after the successes in `attempts`,
    /// recorded without them by one statement.
    async fn recover(
        &self,
        attempts: &[&AttemptRecord],
        failing: &[String],
        now: i64,
    ) -> Result<Vec<(event::Model, u64)>, DbErr> {
        let theirs: Vec<&AttemptRecord> = attempts
            .iter()
            .copied()
            .filter(|r| failing.iter().any(|id| id == r.live.endpoint_id.as_str()))
            .collect();
        let txn = self.db.begin().await?;
        let published = bookkeeping::update(&txn, &theirs, self.rules, now).await?;
        txn.commit().await?;
        self.metrics
            .written(Writer::Recorder, WritePath::Transaction);
        Ok(published)
    }
}

async fn insert_attempts(
    txn: &DatabaseTransaction,
    attempts: &[&AttemptRecord],
) -> Result<(), DbErr> {
    let weight = |r: &&AttemptRecord| {
        let a = &r.live.attempt;
        300 + a.endpoint_url.len()
            + a.response_body.as_ref().map_or(0, String::len)
            + a.error_message.as_ref().map_or(0, String::len)
    };
    for chunk in chunks_by_size(attempts, 256, weight) {
        if chunk.is_empty() {
            continue;
        }
        let rows = chunk.iter().map(|r| {
            let a = r.live.attempt.clone();
            delivery_attempt::ActiveModel {
                id: Set(a.id),
                tenant_id: Set(a.tenant_id),
                delivery_id: Set(a.delivery_id),
                attempt_number: Set(a.attempt_number),
                endpoint_url: Set(a.endpoint_url),
                outcome: Set(a.outcome),
                started_at: Set(a.started_at),
                duration_ms: Set(a.duration_ms),
                response_status: Set(a.response_status),
                response_body: Set(a.response_body),
                error_kind: Set(a.error_kind),
                error_message: Set(a.error_message),
                next_attempt_at: Set(a.next_attempt_at),
                instance_id: Set(a.instance_id),
                endpoint_id: Set(a.endpoint_id),
            }
        });
        // A retried batch whose first commit landed (its answer was lost
        // with the connection) finds its attempts already there: success.
        delivery_attempt::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(delivery_attempt::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Adds to `batch` what arrives within [`GATHER_FOR`].
async fn gather(rx: &mut mpsc::Receiver<Record>, batch: &mut Vec<Record>) {
    let until = tokio::time::Instant::now() + GATHER_FOR;
    while batch.len() < MAX_BATCH {
        let room = MAX_BATCH - batch.len();
        match tokio::time::timeout_at(until, rx.recv_many(batch, room)).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Whether an attempt moved its delivery to another status (see
/// [`DeliveryChange::is_news`]).
fn changes_status(record: &AttemptRecord) -> bool {
    DeliveryChange::is_news(record.live.attempt.attempt_number, record.delivery_status)
}

/// What the attempt decided for its delivery.
fn settlement(record: &AttemptRecord) -> Settlement<'_> {
    let attempt = &record.live.attempt;
    Settlement {
        delivery_id: &attempt.delivery_id,
        claim_token: record.claim_token,
        status: record.delivery_status,
        attempt_number: attempt.attempt_number,
        next_attempt_at: attempt.next_attempt_at,
        attempted_at: attempt.started_at,
        response_status: attempt.response_status,
    }
}

#[cfg(test)]
mod tests {
    use entity::{delivery::DeliveryStatus, delivery_attempt::AttemptOutcome};
    use sea_orm::{ConnectionTrait, Database, EntityTrait, PaginatorTrait, TransactionTrait};

    use super::*;
    use crate::{
        domain::facts::LiveAttempt,
        ids::{AttemptId, EndpointId, EventId, WebhookId},
    };

    fn attempt() -> AttemptRecord {
        AttemptRecord {
            live: LiveAttempt {
                attempt: delivery_attempt::Model {
                    id: AttemptId::new(),
                    tenant_id: "acme".into(),
                    delivery_id: DeliveryId::new(),
                    attempt_number: 1,
                    endpoint_url: "http://127.0.0.1:9/".into(),
                    outcome: AttemptOutcome::Succeeded,
                    started_at: 1,
                    duration_ms: 1,
                    response_status: Some(200),
                    response_body: None,
                    error_kind: None,
                    error_message: None,
                    next_attempt_at: None,
                    instance_id: None,
                    endpoint_id: None,
                },
                event_id: EventId::new(),
                event_type: "offer.created".into(),
                webhook_id: WebhookId::new(),
                endpoint_id: EndpointId::new(),
            },
            claim_token: 1,
            delivery_status: DeliveryStatus::Succeeded,
            disable_endpoint: None,
            sequence: None,
        }
    }

    /// A batch retried after its commit landed but the answer was lost (the
    /// connection died in between) finds its rows there: that is success,
    /// not a duplicate-key error to retry forever.
    #[tokio::test]
    async fn writing_the_same_attempts_again_stores_them_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/hookline.db?mode=rwc", dir.path().display());
        crate::db::migrate(&url).await.expect("migrate");
        let mut options = sea_orm::ConnectOptions::new(&url);
        options.max_connections(1);
        let db = Database::connect(options).await.expect("connect");
        // The attempts' delivery does not exist: this test is about the
        // attempts alone.
        db.execute_unprepared("PRAGMA foreign_keys = OFF")
            .await
            .expect("pragma");
        let records = [attempt(), attempt()];
        let refs: Vec<&AttemptRecord> = records.iter().collect();
        for _ in 0..2 {
            let txn = db.begin().await.expect("begin");
            insert_attempts(&txn, &refs).await.expect("written");
            txn.commit().await.expect("commit");
        }
        let stored = delivery_attempt::Entity::find()
            .count(&db)
            .await
            .expect("count");
        assert_eq!(stored, 2);
    }
}
