//! Publishing events and reading them back.
//!
//! Publishing is durable: the event and one delivery per matching (active
//! webhook × endpoint) are committed in one transaction before the caller
//! gets an answer. The worker is woken after the commit.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use bytes::Bytes;

use entity::{
    delivery::{self, DeliveryStatus},
    endpoint, event,
    webhook::{self, WebhookStatus},
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde::Serialize;
use serde_json::Value;

use super::{
    catalog,
    handoff::{HandOver, LocalWorker, Reservation},
    labels::{self, Labels},
    pagination::{Page, PageRequest},
    patterns::Pattern,
    publish_limit::PublishLimit,
    tenant_config::{TenantConfig, TenantConfigCache},
    webhooks::string_list,
};
use crate::{
    bus::Bus,
    db::{chunks_by_size, is_unique_violation},
    error::{AppError, AppResult},
    ids::{self, IdKind, new_id},
    metrics::Metrics,
    time::{now_ms, to_datetime},
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

#[derive(Clone, Debug)]
pub struct PublishInput {
    pub event_type: String,
    pub data: Value,
    pub labels: Option<Value>,
    /// Epoch ms; now when absent.
    pub occurred_at: Option<i64>,
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Published {
    pub event: event::Model,
    pub delivery_count: u64,
    /// True when an idempotency key returned an earlier event.
    pub duplicate: bool,
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// An event ready to insert: validated, with its body rendered.
struct Prepared {
    model: event::Model,
    labels: Labels,
}

/// A webhook that may receive events, with its endpoints.
pub struct Target {
    pub webhook_id: String,
    pub patterns: Vec<Pattern>,
    pub filter: Labels,
    pub endpoint_ids: Vec<String>,
}

impl Target {
    /// What a webhook subscribes to, whatever its status.
    pub fn of(webhook: &webhook::Model, endpoint_ids: Vec<String>) -> Self {
        Self {
            webhook_id: webhook.id.clone(),
            patterns: string_list(&webhook.event_types)
                .iter()
                .filter_map(|p| Pattern::parse(p).ok())
                .collect(),
            filter: webhook
                .label_filter
                .as_ref()
                .map(labels::from_json)
                .unwrap_or_default(),
            endpoint_ids,
        }
    }

    fn wants(&self, event_type: &str, labels: &Labels) -> bool {
        self.patterns.iter().any(|p| p.matches(event_type)) && labels::matches(&self.filter, labels)
    }

    /// Whether a stored event is one this webhook subscribes to.
    pub fn wants_stored(&self, event: &event::Model) -> bool {
        self.wants(&event.event_type, &labels::from_json(&event.labels))
    }
}

/// Compiled payload schemas by (tenant, type), with the type's `updated_at`.
type ValidatorCache = HashMap<(String, String), (i64, Arc<jsonschema::Validator>)>;

#[derive(Clone)]
pub struct EventService {
    db: DatabaseConnection,
    bus: Arc<Bus>,
    max_payload_bytes: usize,
    limit: Arc<PublishLimit>,
    metrics: Arc<Metrics>,
    config: Arc<TenantConfigCache>,
    /// This instance's worker, when it has one.
    local: Arc<OnceLock<Arc<dyn LocalWorker>>>,
    validators: Arc<Mutex<ValidatorCache>>,
}

impl EventService {
    pub fn new(
        db: DatabaseConnection,
        bus: Arc<Bus>,
        max_payload_bytes: usize,
        limit: Arc<PublishLimit>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            db,
            bus,
            max_payload_bytes,
            limit,
            metrics,
            config: Arc::default(),
            local: Arc::default(),
            validators: Arc::default(),
        }
    }

    /// Publishes events atomically: all are stored with their deliveries, or
    /// none is. In a `batch`, errors name the input (`inputs[3].data`).
    pub async fn publish(
        &self,
        tenant: &str,
        inputs: Vec<PublishInput>,
        batch: bool,
    ) -> AppResult<Vec<Published>> {
        if inputs.is_empty() || inputs.len() > MAX_BATCH {
            return Err(AppError::bad_input(
                "inputs",
                format!("must hold between 1 and {MAX_BATCH} events"),
            ));
        }
        self.limit.check(tenant, inputs.len())?;
        // A concurrent publish with the same idempotency key can win the race
        // to insert; the retry then finds its event and returns it.
        // A webhook deleted between reading the configuration and inserting
        // fails the foreign key: the retry reads the configuration anew.
        let (published, queued) = match self.commit(tenant, &inputs, batch).await {
            Err(AppError::Conflict(_) | AppError::Retry) => {
                self.commit(tenant, &inputs, batch).await?
            }
            other => other?,
        };
        if queued > 0 {
            self.bus.deliveries_due();
        }
        let fresh: Vec<event::Model> = published
            .iter()
            .filter(|p| !p.duplicate)
            .map(|p| p.event.clone())
            .collect();
        let deliveries: u64 = published
            .iter()
            .filter(|p| !p.duplicate)
            .map(|p| p.delivery_count)
            .sum();
        self.metrics.published(fresh.len() as u64, deliveries);
        self.bus.announce_events(&fresh);
        Ok(published)
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

    /// Stores the events and their deliveries in one transaction. Returns
    /// what was published and how many deliveries were left to the queue
    /// (not handed to the local worker).
    async fn commit(
        &self,
        tenant: &str,
        inputs: &[PublishInput],
        batch: bool,
    ) -> AppResult<(Vec<Published>, usize)> {
        let txn = self.db.begin().await?;
        let config = self.config.get(&txn, tenant).await?;
        let prepared = self.prepare(tenant, inputs, batch, &config)?;
        let mut published = Vec::with_capacity(prepared.len());
        let mut events = Vec::with_capacity(prepared.len());
        let mut deliveries = Vec::new();
        let mut keys_in_batch: HashMap<&str, usize> = HashMap::new();
        for item in &prepared {
            if let Some(key) = item.model.idempotency_key.as_deref() {
                if let Some(&first) = keys_in_batch.get(key) {
                    let earlier: &Published = &published[first];
                    published.push(Published {
                        duplicate: true,
                        ..earlier.clone()
                    });
                    continue;
                }
                if let Some(existing) =
                    take_idempotent(&txn, tenant, key, item.model.created_at).await?
                {
                    keys_in_batch.insert(key, published.len());
                    published.push(existing);
                    continue;
                }
                keys_in_batch.insert(key, published.len());
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
            published.push(Published {
                event: item.model.clone(),
                delivery_count: (deliveries.len() - before) as u64,
                duplicate: false,
            });
            events.push(item.model.clone());
        }
        let (reservation, taken) = self.reserve_local(&mut deliveries);
        insert_events(&txn, events).await?;
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
        let bodies: HashMap<&str, (Arc<str>, Bytes)> = prepared
            .iter()
            .map(|p| {
                let body = Bytes::from(p.model.body.clone());
                (
                    p.model.id.as_str(),
                    (Arc::<str>::from(p.model.event_type.as_str()), body),
                )
            })
            .collect();
        let jobs = deliveries
            .into_iter()
            .zip(taken)
            .filter(|(_, taken)| *taken)
            .filter_map(|(delivery, _)| {
                let (event_type, body) = bodies.get(delivery.event_id.as_str())?.clone();
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
        Ok((published, queued))
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

    /// Hands this instance's deliveries to its worker from now on.
    pub fn set_local_worker(&self, worker: Arc<dyn LocalWorker>) {
        let _ = self.local.set(worker);
    }

    /// Stores an event for exactly the given endpoints, regardless of
    /// subscriptions (test pings, resends). Returns the event and the ids of
    /// its new deliveries.
    pub(crate) async fn publish_to(
        &self,
        tenant: &str,
        event_type: &str,
        data: &Value,
        webhook_id: &str,
        endpoint_ids: &[String],
    ) -> AppResult<(event::Model, Vec<delivery::Model>)> {
        let now = now_ms();
        let id = new_id(IdKind::Event);
        let model = event::Model {
            body: render_body(&id, event_type, now, data),
            id,
            tenant_id: tenant.to_owned(),
            event_type: event_type.to_owned(),
            occurred_at: now,
            labels: Value::Object(Default::default()),
            idempotency_key: None,
            created_at: now,
        };
        let deliveries: Vec<delivery::Model> = endpoint_ids
            .iter()
            .map(|endpoint_id| new_delivery(&model, webhook_id, endpoint_id, now))
            .collect();
        let txn = self.db.begin().await?;
        insert_events(&txn, vec![model.clone()]).await?;
        insert_deliveries(&txn, &deliveries).await?;
        txn.commit().await?;
        self.bus.deliveries_due();
        self.metrics.published(1, deliveries.len() as u64);
        self.bus.announce_events(std::slice::from_ref(&model));
        Ok((model, deliveries))
    }

    pub async fn find_in_tenant(&self, tenant: &str, id: &str) -> AppResult<event::Model> {
        if !ids::is_valid(IdKind::Event, id) {
            return Err(AppError::NotFound("event"));
        }
        event::Entity::find_by_id(id)
            .filter(event::Column::TenantId.eq(tenant))
            .one(&self.db)
            .await?
            .ok_or(AppError::NotFound("event"))
    }

    /// The tenant's events, newest first.
    pub async fn list(
        &self,
        tenant: &str,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> AppResult<Page<event::Model>> {
        let mut query = event::Entity::find()
            .filter(event::Column::TenantId.eq(tenant))
            .order_by_desc(event::Column::Id)
            .limit(page.fetch_limit());
        if let Some(after) = &page.after {
            query = query.filter(event::Column::Id.lt(after.as_str()));
        }
        if let Some(event_type) = &filter.event_type {
            query = query.filter(event::Column::EventType.eq(event_type.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(event::Column::CreatedAt.gte(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(event::Column::CreatedAt.lt(until));
        }
        Ok(Page::from_rows(query.all(&self.db).await?, page))
    }
}

/// `{"id","type","timestamp","data"}`: rendered once, signed and sent as is.
pub fn render_body(id: &str, event_type: &str, occurred_at: i64, data: &Value) -> String {
    #[derive(Serialize)]
    struct Envelope<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        event_type: &'a str,
        timestamp: String,
        data: &'a Value,
    }
    let envelope = Envelope {
        id,
        event_type,
        timestamp: to_datetime(occurred_at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        data,
    };
    serde_json::to_string(&envelope).expect("JSON values always serialize")
}

/// A delivery of `event` to one endpoint, due at `now`.
pub(crate) fn new_delivery(
    event: &event::Model,
    webhook_id: &str,
    endpoint_id: &str,
    now: i64,
) -> delivery::Model {
    delivery::Model {
        id: new_id(IdKind::Delivery),
        tenant_id: event.tenant_id.clone(),
        event_id: event.id.clone(),
        webhook_id: webhook_id.to_owned(),
        endpoint_id: endpoint_id.to_owned(),
        status: DeliveryStatus::Pending,
        attempt_count: 0,
        next_attempt_at: Some(now),
        claim_token: None,
        claimed_by: None,
        last_attempt_at: None,
        last_response_status: None,
        created_at: now,
        updated_at: now,
    }
}

/// A tenant's active webhooks, their endpoints, and what they subscribe to.
pub struct ActiveSet {
    pub targets: Vec<Target>,
    pub webhooks: HashMap<String, Arc<webhook::Model>>,
    pub endpoints: HashMap<String, Arc<endpoint::Model>>,
}

pub(crate) async fn load_active<C: ConnectionTrait>(db: &C, tenant: &str) -> AppResult<ActiveSet> {
    let webhooks = webhook::Entity::find()
        .filter(webhook::Column::TenantId.eq(tenant))
        .filter(webhook::Column::Status.eq(WebhookStatus::Active))
        .all(db)
        .await?;
    let endpoints = if webhooks.is_empty() {
        Vec::new()
    } else {
        endpoint::Entity::find()
            .filter(endpoint::Column::TenantId.eq(tenant))
            .filter(endpoint::Column::WebhookId.is_in(webhooks.iter().map(|w| w.id.as_str())))
            .order_by_asc(endpoint::Column::Position)
            .all(db)
            .await?
    };
    let targets = webhooks
        .iter()
        .map(|webhook| {
            let endpoint_ids = endpoints
                .iter()
                .filter(|e| e.webhook_id == webhook.id)
                .map(|e| e.id.clone())
                .collect();
            Target::of(webhook, endpoint_ids)
        })
        .collect();
    Ok(ActiveSet {
        targets,
        webhooks: webhooks
            .into_iter()
            .map(|w| (w.id.clone(), Arc::new(w)))
            .collect(),
        endpoints: endpoints
            .into_iter()
            .map(|e| (e.id.clone(), Arc::new(e)))
            .collect(),
    })
}

/// The tenant's active webhooks with their endpoints.
pub(crate) async fn active_targets<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
) -> AppResult<Vec<Target>> {
    Ok(load_active(db, tenant).await?.targets)
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

async fn insert_events(txn: &DatabaseTransaction, events: Vec<event::Model>) -> AppResult<()> {
    for chunk in chunks_by_size(&events, INSERT_CHUNK, |e| {
        e.body.len() + e.id.len() * 2 + 96
    }) {
        let rows = chunk.iter().cloned().map(|m| event::ActiveModel {
            id: Set(m.id),
            tenant_id: Set(m.tenant_id),
            event_type: Set(m.event_type),
            occurred_at: Set(m.occurred_at),
            body: Set(m.body),
            labels: Set(m.labels),
            idempotency_key: Set(m.idempotency_key),
            created_at: Set(m.created_at),
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
