//! The write path of publishing: matching webhooks and storing events with
//! their deliveries, durably, before anyone is told.
//!
//! Single `publishEvent` calls that arrive together are committed together
//! (group commit): a coalescer takes whatever submissions are waiting and
//! stores them in one transaction, so under load a commit carries many events
//! while a lone request waits for nothing. Submissions arrive checked
//! (`publish_check`): nothing slow runs inside the transaction. When the
//! database refuses part of a shared commit, the group is written again with
//! each submission under its own savepoint, so only the submission it
//! refuses fails; only a database that cannot store at all fails everyone.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use bytes::Bytes;
use entity::{delivery, event};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};

use super::{
    events::{Published, new_delivery},
    handoff::{HandOver, LocalWorker, Reservation},
    publish_check::Checked,
    tenant_config::{TenantConfig, TenantConfigCache},
};
use crate::{
    db::{chunks_by_size, is_unique_violation, statement},
    error::{AppError, AppResult},
};

pub const MAX_BATCH: usize = 1_000;
/// How long an idempotency key returns the first event instead of a new one.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Rows per INSERT at most: keeps every statement under SQLite's and
/// PostgreSQL's bound-parameter limits (and see `db::STATEMENT_BYTES`).
const INSERT_CHUNK: usize = 500;
/// Roughly what one delivery row's parameters weigh on the wire.
const DELIVERY_ROW_BYTES: usize = 200;
/// Most single publishes one group commit carries.
const MAX_GROUP: usize = 256;

/// What a group commit did for each submission, and how many of its
/// deliveries were left to the queue (not handed to the local worker).
/// `AppError::Retry` sends a submission back to be checked again.
pub struct Outcome {
    pub results: Vec<AppResult<Vec<Published>>>,
    pub queued: usize,
}

pub struct Publisher {
    db: DatabaseConnection,
    configs: Arc<TenantConfigCache>,
    /// This instance's worker, when it has one.
    local: OnceLock<Arc<dyn LocalWorker>>,
}

impl Publisher {
    pub fn new(db: DatabaseConnection, configs: Arc<TenantConfigCache>) -> Self {
        Self {
            db,
            configs,
            local: OnceLock::new(),
        }
    }

    pub fn set_local_worker(&self, worker: Arc<dyn LocalWorker>) {
        let _ = self.local.set(worker);
    }

    /// Commits the submissions in one transaction. If the database refuses
    /// anything in it, the group is written once more with each submission
    /// under its own savepoint: one submission's failure never fails the
    /// others. A database that cannot store (`UNAVAILABLE`) fails them all:
    /// nothing was stored.
    pub async fn commit(&self, group: &[Checked]) -> Outcome {
        let err = match self.commit_together(group).await {
            Ok(outcome) => return outcome,
            Err(err @ AppError::Unavailable(_)) => err,
            Err(err) => {
                tracing::debug!(error = %err, submissions = group.len(),
                    "a group commit was refused; writing its submissions one by one");
                match self.commit_apart(group).await {
                    Ok(outcome) => return outcome,
                    Err(err) => err,
                }
            }
        };
        // Each caller's error reaches its own response (and log line).
        Outcome {
            results: group.iter().map(|_| Err(err.duplicate())).collect(),
            queued: 0,
        }
    }

    /// The fast path: every submission's rows in the same statements.
    async fn commit_together(&self, group: &[Checked]) -> AppResult<Outcome> {
        let txn = self.db.begin().await?;
        let mut rows = Rows::default();
        let mut results = Vec::with_capacity(group.len());
        for checked in group {
            let config = rows.config(&self.configs, &txn, &checked.tenant).await?;
            if !checked.still_valid(&config) {
                results.push(Err(AppError::Retry));
                continue;
            }
            let staged = stage(&txn, checked, &config, &rows.keys).await?;
            results.push(Ok(rows.add(staged)));
        }
        let (reservation, taken) = self.reserve_local(&mut rows.deliveries);
        write(&txn, &rows.events, &rows.deliveries).await?;
        txn.commit().await?;
        let queued = rows.deliveries.len() - taken.iter().filter(|t| **t).count();
        reservation.hand_over(rows.hand_overs(taken));
        Ok(Outcome { results, queued })
    }

    /// The careful path, after the database refused part of a group: each
    /// submission under its own savepoint, so what is refused undoes only
    /// its own rows. Deliveries go to the queue (no hand-over).
    async fn commit_apart(&self, group: &[Checked]) -> AppResult<Outcome> {
        let txn = self.db.begin().await?;
        let mut rows = Rows::default();
        let mut results = Vec::with_capacity(group.len());
        for checked in group {
            let config = rows.config(&self.configs, &txn, &checked.tenant).await?;
            results.push(if checked.still_valid(&config) {
                write_alone(&txn, checked, &config, &mut rows).await?
            } else {
                Err(AppError::Retry)
            });
        }
        txn.commit().await?;
        Ok(Outcome {
            results,
            queued: rows.deliveries.len(),
        })
    }

    /// Lets the local worker take what it can of these deliveries: those it
    /// takes are stamped as claimed by this instance.
    fn reserve_local(&self, deliveries: &mut [delivery::Model]) -> (Reservation, Vec<bool>) {
        let Some(worker) = self.local.get().filter(|_| !deliveries.is_empty()) else {
            return (Reservation::none(), vec![false; deliveries.len()]);
        };
        let endpoint_ids: Vec<&str> = deliveries.iter().map(|d| d.endpoint_id.as_str()).collect();
        let taken = worker.reserve(&endpoint_ids);
        let count = taken.iter().filter(|t| **t).count();
        if count == 0 {
            return (Reservation::none(), taken);
        }
        let (instance, lease_ms) = worker.claimant();
        let token: i64 = rand::random();
        for (delivery, _) in deliveries.iter_mut().zip(&taken).filter(|(_, t)| **t) {
            delivery.claim_token = Some(token);
            delivery.claimed_by = Some(instance.clone());
            delivery.next_attempt_at = Some(delivery.created_at + lease_ms);
        }
        (Reservation::new(worker.clone(), count), taken)
    }
}

/// What a group commit writes, gathered submission by submission.
#[derive(Default)]
struct Rows {
    configs: HashMap<String, Arc<TenantConfig>>,
    /// Events by (tenant, idempotency key), for keys repeated in the group.
    keys: HashMap<(String, String), Published>,
    events: Vec<event::Model>,
    deliveries: Vec<delivery::Model>,
}

impl Rows {
    /// The tenant's current configuration, read once per transaction.
    async fn config<C: ConnectionTrait>(
        &mut self,
        cache: &TenantConfigCache,
        db: &C,
        tenant: &str,
    ) -> AppResult<Arc<TenantConfig>> {
        if let Some(config) = self.configs.get(tenant) {
            return Ok(config.clone());
        }
        let config = cache.get(db, tenant).await?;
        self.configs.insert(tenant.to_owned(), config.clone());
        Ok(config)
    }

    fn add(&mut self, staged: Staged) -> Vec<Published> {
        self.keys.extend(staged.keys);
        self.events.extend(staged.events);
        self.deliveries.extend(staged.deliveries);
        staged.published
    }

    /// The committed deliveries the local worker took, with what sending
    /// them needs.
    fn hand_overs(self, taken: Vec<bool>) -> Vec<HandOver> {
        if !taken.contains(&true) {
            return Vec::new();
        }
        type Sendable = (Arc<str>, Bytes, Option<Arc<str>>);
        let bodies: HashMap<String, Sendable> = self
            .events
            .into_iter()
            .map(|e| {
                (
                    e.id,
                    (
                        Arc::from(e.event_type.as_str()),
                        Bytes::from(e.body),
                        e.trace_context.map(Arc::from),
                    ),
                )
            })
            .collect();
        let configs = self.configs;
        self.deliveries
            .into_iter()
            .zip(taken)
            .filter(|(_, taken)| *taken)
            .filter_map(|(delivery, _)| {
                let config = configs.get(delivery.tenant_id.as_str())?;
                let (event_type, body, trace_context) = bodies.get(&delivery.event_id)?.clone();
                Some(HandOver {
                    webhook: config.active.webhooks.get(&delivery.webhook_id)?.clone(),
                    endpoint: config.active.endpoints.get(&delivery.endpoint_id)?.clone(),
                    event_type,
                    body,
                    trace_context,
                    delivery,
                })
            })
            .collect()
    }
}

/// One submission's rows: its events (those its idempotency keys do not
/// answer with an earlier one) and their deliveries to the tenant's
/// matching webhooks as `config` has them.
struct Staged {
    published: Vec<Published>,
    events: Vec<event::Model>,
    deliveries: Vec<delivery::Model>,
    keys: Vec<((String, String), Published)>,
}

async fn stage(
    txn: &DatabaseTransaction,
    checked: &Checked,
    config: &TenantConfig,
    earlier: &HashMap<(String, String), Published>,
) -> AppResult<Staged> {
    let tenant = checked.tenant.as_str();
    let mut staged = Staged {
        published: Vec::with_capacity(checked.items.len()),
        events: Vec::with_capacity(checked.items.len()),
        deliveries: Vec::new(),
        keys: Vec::new(),
    };
    let mut own_keys: HashMap<(String, String), Published> = HashMap::new();
    for item in &checked.items {
        let model = &item.model;
        if let Some(key) = &model.idempotency_key {
            let id = (tenant.to_owned(), key.clone());
            if let Some(first) = own_keys.get(&id).or_else(|| earlier.get(&id)) {
                staged.published.push(Published {
                    duplicate: true,
                    ..first.clone()
                });
                continue;
            }
            if let Some(existing) = take_idempotent(txn, tenant, key, model.created_at).await? {
                own_keys.insert(id, existing.clone());
                staged.published.push(existing);
                continue;
            }
        }
        let before = staged.deliveries.len();
        for target in config
            .active
            .targets
            .iter()
            .filter(|t| t.wants(&model.event_type, &item.labels))
        {
            for endpoint_id in &target.endpoint_ids {
                staged.deliveries.push(new_delivery(
                    model,
                    &target.webhook_id,
                    endpoint_id,
                    model.created_at,
                ));
            }
        }
        let entry = Published {
            event: model.clone(),
            delivery_count: (staged.deliveries.len() - before) as u64,
            duplicate: false,
        };
        if let Some(key) = &model.idempotency_key {
            own_keys.insert((tenant.to_owned(), key.clone()), entry.clone());
        }
        staged.published.push(entry);
        staged.events.push(model.clone());
    }
    staged.keys = own_keys.into_iter().collect();
    Ok(staged)
}

/// Writes one submission under its own savepoint inside `txn`. What the
/// database refuses is that submission's error (the outer `Ok`); a race (its
/// idempotency key inserted by a commit running beside this one, a webhook
/// deleted meanwhile) is written once more, then sent back to be checked
/// again. The outer error is a database that cannot store at all.
async fn write_alone(
    txn: &DatabaseTransaction,
    checked: &Checked,
    config: &TenantConfig,
    rows: &mut Rows,
) -> AppResult<AppResult<Vec<Published>>> {
    let mut last = AppError::Retry;
    for _ in 0..2 {
        let savepoint = txn.begin().await?;
        let attempt = async {
            let staged = stage(&savepoint, checked, config, &rows.keys).await?;
            write(&savepoint, &staged.events, &staged.deliveries).await?;
            Ok::<_, AppError>(staged)
        }
        .await;
        match attempt {
            Ok(staged) => {
                savepoint.commit().await?;
                return Ok(Ok(rows.add(staged)));
            }
            Err(err @ AppError::Unavailable(_)) => return Err(err),
            Err(err) => {
                savepoint.rollback().await?;
                if !matches!(err, AppError::Conflict(_) | AppError::Retry) {
                    return Ok(Err(err));
                }
                last = err;
            }
        }
    }
    tracing::debug!(error = %last, "a publish lost a race twice; checking it again");
    Ok(Err(AppError::Retry))
}

/// Inserts events and their deliveries. Losing a race is `Retry`: a
/// delivery whose webhook or endpoint was deleted meanwhile (its foreign
/// key), or a deadlock with a commit beside this one that inserts the same
/// idempotency keys in another order (PostgreSQL class 40).
async fn write(
    txn: &DatabaseTransaction,
    events: &[event::Model],
    deliveries: &[delivery::Model],
) -> AppResult<()> {
    let raced = |err: AppError| match err {
        AppError::Internal(cause)
            if cause.downcast_ref::<sea_orm::DbErr>().is_some_and(is_race) =>
        {
            AppError::Retry
        }
        other => other,
    };
    insert_events(txn, events).await.map_err(raced)?;
    insert_deliveries(txn, deliveries).await.map_err(raced)
}

fn is_race(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx::Error as Sqlx};
    if matches!(
        err.sql_err(),
        Some(SqlErr::ForeignKeyConstraintViolation(_))
    ) {
        return true;
    }
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            matches!(inner.as_ref(), Sqlx::Database(db)
                if db.code().is_some_and(|code| code.len() == 5 && code.starts_with("40")))
        }
        _ => false,
    }
}

/// A single publish waiting for the next group commit.
struct Pending {
    submission: Checked,
    reply: oneshot::Sender<(AppResult<Vec<Published>>, usize)>,
}

/// Gathers single publishes into group commits.
#[derive(Clone)]
pub struct Coalescer {
    tx: mpsc::Sender<Pending>,
}

impl Coalescer {
    /// `lanes` group commits may run at once (one on SQLite, which has a
    /// single writer).
    pub fn start(publisher: Arc<Publisher>, lanes: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Pending>(4 * MAX_GROUP);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..lanes.max(1) {
            let (publisher, rx) = (publisher.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    let mut group = Vec::new();
                    {
                        let mut rx = rx.lock().await;
                        if rx.recv_many(&mut group, MAX_GROUP).await == 0 {
                            return;
                        }
                    }
                    let (submissions, replies): (Vec<Checked>, Vec<_>) =
                        group.into_iter().map(|p| (p.submission, p.reply)).unzip();
                    let outcome = publisher.commit(&submissions).await;
                    let mut queued = outcome.queued;
                    for (result, reply) in outcome.results.into_iter().zip(replies) {
                        // The whole group's queued count goes with the first
                        // answer; it only decides whether to wake the workers.
                        let _ = reply.send((result, std::mem::take(&mut queued)));
                    }
                }
            });
        }
        Self { tx }
    }

    /// Publishes through the next group commit.
    pub async fn submit(&self, submission: Checked) -> (AppResult<Vec<Published>>, usize) {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Pending { submission, reply }).await.is_err() {
            return (
                Err(AppError::internal(anyhow::anyhow!(
                    "the publisher has stopped"
                ))),
                0,
            );
        }
        answer.await.unwrap_or_else(|_| {
            (
                Err(AppError::internal(anyhow::anyhow!(
                    "the publisher has stopped"
                ))),
                0,
            )
        })
    }
}

/// The event already published with this key in the last 24 hours, if any.
/// An older holder of the key gives it up, so the key can be used again.
async fn take_idempotent(
    txn: &DatabaseTransaction,
    tenant: &str,
    key: &str,
    now: i64,
) -> AppResult<Option<Published>> {
    let Some(existing) = event::Entity::find()
        .filter(event::Column::TenantId.eq(tenant))
        .filter(event::Column::IdempotencyKey.eq(key))
        .one(txn)
        .await?
    else {
        return Ok(None);
    };
    if existing.created_at > now - IDEMPOTENCY_WINDOW_MS {
        let delivery_count = delivery::Entity::find()
            .filter(delivery::Column::EventId.eq(existing.id.as_str()))
            .count(txn)
            .await?;
        return Ok(Some(Published {
            event: existing,
            delivery_count,
            duplicate: true,
        }));
    }
    event::Entity::update_many()
        .col_expr(
            event::Column::IdempotencyKey,
            sea_orm::sea_query::Expr::value(Option::<String>::None),
        )
        .filter(event::Column::Id.eq(existing.id.as_str()))
        .exec(txn)
        .await?;
    Ok(None)
}

pub(crate) async fn insert_events(
    txn: &DatabaseTransaction,
    events: &[event::Model],
) -> AppResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    // PostgreSQL stamps the transaction id itself (the column's default).
    let commit_seq = match txn.get_database_backend() {
        DbBackend::Sqlite => Set(next_commit_seq(txn).await?),
        _ => NotSet,
    };
    for chunk in chunks_by_size(events, INSERT_CHUNK, |e| e.body.len() + e.id.len() * 2 + 96) {
        let rows = chunk.iter().cloned().map(|m| event::ActiveModel {
            id: Set(m.id),
            tenant_id: Set(m.tenant_id),
            event_type: Set(m.event_type),
            occurred_at: Set(m.occurred_at),
            body: Set(m.body),
            labels: Set(m.labels),
            idempotency_key: Set(m.idempotency_key),
            created_at: Set(m.created_at),
            commit_seq: commit_seq.clone(),
            trace_context: Set(m.trace_context),
        });
        match event::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await
        {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => {
                return Err(AppError::Conflict(
                    "an event with this idempotency key is being published".into(),
                ));
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// The next commit position on SQLite, where write transactions run one at a
/// time, so numbering them as they run numbers them in commit order.
async fn next_commit_seq(txn: &DatabaseTransaction) -> AppResult<i64> {
    let row = txn
        .query_one_raw(statement(
            DbBackend::Sqlite,
            "INSERT INTO counters (name, value) VALUES ('events', 1) \
             ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
            Vec::new(),
        ))
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("the events counter returned no row")))?;
    Ok(row.try_get::<i64>("", "value")?)
}

pub(crate) async fn insert_deliveries<C: ConnectionTrait>(
    db: &C,
    deliveries: &[delivery::Model],
) -> AppResult<()> {
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
        });
        delivery::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}
