//! The write path of publishing: validating inputs, matching webhooks, and
//! storing events with their deliveries, durably, before anyone is told.
//!
//! Single `publishEvent` calls that arrive together are committed together
//! (group commit): a coalescer takes whatever submissions are waiting and
//! stores them in one transaction, so under load a commit carries many events
//! while a lone request waits for nothing. Each submission is validated on its
//! own, so one bad input fails only its own request.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use bytes::Bytes;
use entity::{delivery, event};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, TransactionTrait,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{
    catalog,
    events::{PublishInput, Published, new_delivery, render_body},
    handoff::{HandOver, LocalWorker, Reservation},
    labels::{self, Labels},
    tenant_config::{TenantConfig, TenantConfigCache},
    validate,
};
use crate::{
    db::{chunks_by_size, is_unique_violation, statement},
    error::{AppError, AppResult},
    ids::{IdKind, new_id},
    time::now_ms,
};

pub const MAX_BATCH: usize = 1_000;
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
/// How long an idempotency key returns the first event instead of a new one.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Rows per INSERT at most: keeps every statement under SQLite's and
/// PostgreSQL's bound-parameter limits (and see `db::STATEMENT_BYTES`).
const INSERT_CHUNK: usize = 500;
/// Roughly what one delivery row's parameters weigh on the wire.
const DELIVERY_ROW_BYTES: usize = 200;
/// Most single publishes one group commit carries.
const MAX_GROUP: usize = 256;

/// One caller's events, published together or not at all.
pub struct Submission {
    pub tenant: String,
    pub inputs: Vec<PublishInput>,
    /// Errors name the input (`inputs[3].data`) in a batch.
    pub batch: bool,
}

/// What a group commit did for each submission, and how many of its
/// deliveries were left to the queue (not handed to the local worker).
pub struct Outcome {
    pub results: Vec<AppResult<Vec<Published>>>,
    pub queued: usize,
}

/// An event ready to insert: validated, with its body rendered.
struct Prepared {
    model: event::Model,
    labels: Labels,
}

/// Compiled payload schemas by (tenant, type), with the type's `updated_at`.
type ValidatorCache = HashMap<(String, String), (i64, Arc<jsonschema::Validator>)>;

pub struct Publisher {
    db: DatabaseConnection,
    max_payload_bytes: usize,
    config: TenantConfigCache,
    /// This instance's worker, when it has one.
    local: OnceLock<Arc<dyn LocalWorker>>,
    validators: Mutex<ValidatorCache>,
}

impl Publisher {
    pub fn new(db: DatabaseConnection, max_payload_bytes: usize) -> Self {
        Self {
            db,
            max_payload_bytes,
            config: TenantConfigCache::default(),
            local: OnceLock::new(),
            validators: Mutex::default(),
        }
    }

    pub fn set_local_worker(&self, worker: Arc<dyn LocalWorker>) {
        let _ = self.local.set(worker);
    }

    /// Commits the submissions in one transaction. A concurrent publish with
    /// the same idempotency key can win the race to insert, and a webhook
    /// deleted meanwhile fails the foreign key: the group then runs again,
    /// finding the other event and reading the configuration anew.
    pub async fn commit(&self, submissions: &[Submission]) -> Outcome {
        let first = match self.commit_once(submissions).await {
            Err(AppError::Conflict(_) | AppError::Retry) => self.commit_once(submissions).await,
            other => other,
        };
        // Each caller's error reaches its own response (and log line).
        first.unwrap_or_else(|err| Outcome {
            results: submissions.iter().map(|_| Err(err.duplicate())).collect(),
            queued: 0,
        })
    }

    async fn commit_once(&self, submissions: &[Submission]) -> AppResult<Outcome> {
        let txn = self.db.begin().await?;
        let mut configs: HashMap<&str, Arc<TenantConfig>> = HashMap::new();
        let mut results = Vec::with_capacity(submissions.len());
        let mut events = Vec::new();
        let mut deliveries = Vec::new();
        let mut bodies: HashMap<String, (Arc<str>, Bytes)> = HashMap::new();
        let mut keys: HashMap<(&str, String), Published> = HashMap::new();
        for submission in submissions {
            let tenant = submission.tenant.as_str();
            let config = match configs.get(tenant) {
                Some(config) => config.clone(),
                None => {
                    let config = self.config.get(&txn, tenant).await?;
                    configs.insert(tenant, config.clone());
                    config
                }
            };
            let prepared = match self.prepare(tenant, &submission.inputs, submission.batch, &config)
            {
                Ok(prepared) => prepared,
                Err(err) => {
                    results.push(Err(err));
                    continue;
                }
            };
            let mut published = Vec::with_capacity(prepared.len());
            for item in prepared {
                if let Some(key) = item.model.idempotency_key.clone() {
                    if let Some(earlier) = keys.get(&(tenant, key.clone())) {
                        published.push(Published {
                            duplicate: true,
                            ..earlier.clone()
                        });
                        continue;
                    }
                    if let Some(existing) =
                        take_idempotent(&txn, tenant, &key, item.model.created_at).await?
                    {
                        keys.insert((tenant, key), existing.clone());
                        published.push(existing);
                        continue;
                    }
                }
                let before = deliveries.len();
                for target in config
                    .active
                    .targets
                    .iter()
                    .filter(|t| t.wants(&item.model.event_type, &item.labels))
                {
                    for endpoint_id in &target.endpoint_ids {
                        deliveries.push(new_delivery(
                            &item.model,
                            &target.webhook_id,
                            endpoint_id,
                            item.model.created_at,
                        ));
                    }
                }
                let entry = Published {
                    event: item.model.clone(),
                    delivery_count: (deliveries.len() - before) as u64,
                    duplicate: false,
                };
                if let Some(key) = &item.model.idempotency_key {
                    keys.insert((tenant, key.clone()), entry.clone());
                }
                bodies.insert(
                    item.model.id.clone(),
                    (
                        Arc::from(item.model.event_type.as_str()),
                        Bytes::from(item.model.body.clone()),
                    ),
                );
                published.push(entry);
                events.push(item.model);
            }
            results.push(Ok(published));
        }
        let (reservation, taken) = self.reserve_local(&mut deliveries);
        insert_events(&txn, &events).await?;
        insert_deliveries(&txn, &deliveries)
            .await
            .map_err(|err| match err {
                AppError::Internal(cause)
                    if cause.downcast_ref::<sea_orm::DbErr>().is_some_and(|e| {
                        matches!(
                            e.sql_err(),
                            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
                        )
                    }) =>
                {
                    AppError::Retry
                }
                other => other,
            })?;
        txn.commit().await?;
        let queued = deliveries.len() - taken.iter().filter(|t| **t).count();
        let jobs = deliveries
            .into_iter()
            .zip(taken)
            .filter(|(_, taken)| *taken)
            .filter_map(|(delivery, _)| {
                let config = configs.get(delivery.tenant_id.as_str())?;
                let (event_type, body) = bodies.get(&delivery.event_id)?.clone();
                Some(HandOver {
                    webhook: config.active.webhooks.get(&delivery.webhook_id)?.clone(),
                    endpoint: config.active.endpoints.get(&delivery.endpoint_id)?.clone(),
                    event_type,
                    body,
                    delivery,
                })
            })
            .collect();
        reservation.hand_over(jobs);
        Ok(Outcome { results, queued })
    }

    /// Validates the inputs against the tenant's event types and renders
    /// each event's body.
    fn prepare(
        &self,
        tenant: &str,
        inputs: &[PublishInput],
        batch: bool,
        config: &TenantConfig,
    ) -> AppResult<Vec<Prepared>> {
        let types = &config.custom_types;
        let now = now_ms();
        let mut prepared = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.iter().enumerate() {
            let prefix = if batch {
                format!("inputs[{index}].")
            } else {
                String::new()
            };
            let field = |name: &str| format!("{prefix}{name}");
            let event_type = input.event_type.trim().to_owned();
            let custom = types.get(&event_type);
            if catalog::builtin(&event_type).is_none() && custom.is_none() {
                return Err(AppError::bad_input(
                    field("type"),
                    format!("unknown event type `{event_type}`"),
                ));
            }
            validate::json_depth(&field("data"), &input.data)?;
            if let Some(custom) = custom
                && let Some(schema) = &custom.schema
            {
                self.check_against_schema(tenant, custom, schema, &input.data, &field("data"))?;
            }
            let labels = match &input.labels {
                None | Some(Value::Null) => Labels::new(),
                Some(value) => labels::parse(&field("labels"), value)?,
            };
            let key = match input.idempotency_key.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(key) if key.len() > MAX_IDEMPOTENCY_KEY_LEN => {
                    return Err(AppError::bad_input(
                        field("idempotencyKey"),
                        format!("must be at most {MAX_IDEMPOTENCY_KEY_LEN} characters"),
                    ));
                }
                Some(key) => Some(key.to_owned()),
            };
            let id = new_id(IdKind::Event);
            let occurred_at = input.occurred_at.unwrap_or(now);
            let body = render_body(&id, &event_type, occurred_at, &input.data);
            if body.len() > self.max_payload_bytes {
                return Err(AppError::bad_input(
                    field("data"),
                    format!("must be at most {} bytes of JSON", self.max_payload_bytes),
                ));
            }
            prepared.push(Prepared {
                model: event::Model {
                    id,
                    tenant_id: tenant.to_owned(),
                    event_type,
                    occurred_at,
                    body,
                    labels: labels::to_json(&labels),
                    idempotency_key: key,
                    created_at: now,
                    commit_seq: 0,
                },
                labels,
            });
        }
        Ok(prepared)
    }

    fn check_against_schema(
        &self,
        tenant: &str,
        custom: &entity::event_type::Model,
        schema: &Value,
        data: &Value,
        field: &str,
    ) -> AppResult<()> {
        let validator = {
            let mut cache = self.validators.lock().unwrap_or_else(|p| p.into_inner());
            let key = (tenant.to_owned(), custom.name.clone());
            match cache.get(&key) {
                Some((version, validator)) if *version == custom.updated_at => validator.clone(),
                _ => {
                    let validator = Arc::new(jsonschema::validator_for(schema).map_err(|e| {
                        AppError::internal(anyhow::anyhow!(
                            "stored schema of {} does not compile: {e}",
                            custom.name
                        ))
                    })?);
                    cache.insert(key, (custom.updated_at, validator.clone()));
                    validator
                }
            }
        };
        if let Some(error) = validator.iter_errors(data).next() {
            let pointer = error.instance_path().to_string();
            let path = pointer
                .split('/')
                .filter(|s| !s.is_empty())
                .fold(field.to_owned(), |acc, segment| format!("{acc}.{segment}"));
            return Err(AppError::bad_input(
                path,
                format!("does not match the event type's schema: {error}"),
            ));
        }
        Ok(())
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

/// A single publish waiting for the next group commit.
struct Pending {
    submission: Submission,
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
                    let (submissions, replies): (Vec<Submission>, Vec<_>) =
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
    pub async fn submit(&self, submission: Submission) -> (AppResult<Vec<Published>>, usize) {
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
