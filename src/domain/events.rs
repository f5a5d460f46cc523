//! Publishing events and reading them back.
//!
//! Publishing is durable: the event and one delivery per matching (active
//! webhook × endpoint) are committed in one transaction before the caller
//! gets an answer; the commit then tells the [`Facts`] port what it stored
//! (see [`super::publish`]).

use std::sync::Arc;

use entity::{delivery, event};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde::Serialize;
use serde_json::Value;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    facts::Facts,
    intake::Intake,
    pagination::{Page, PageRequest},
    publish::{Committed, MAX_BATCH, Publisher, coalescer::Coalescer, insert_events},
    publish_check::Checker,
    publish_limit::PublishLimit,
    queue, removal,
    tenant_config::TenantConfigCache,
};
use crate::{
    db::{Db, LogReads, Served},
    error::{AppError, AppResult},
    ids::{EndpointId, EventId, WebhookId},
    time::{now_ms, to_datetime},
};

#[derive(Clone, Debug)]
pub struct PublishInput {
    pub event_type: String,
    pub data: Value,
    pub labels: Option<Value>,
    /// Epoch ms; now when absent.
    pub occurred_at: Option<i64>,
    pub idempotency_key: Option<String>,
    /// The publisher's W3C `traceparent`, kept with the event for its
    /// deliveries to continue (see `crate::telemetry`).
    pub trace_context: Option<String>,
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

#[derive(Clone)]
pub struct EventService {
    db: DatabaseConnection,
    /// The log's reads: a replica while it is fresh enough.
    log: LogReads,
    facts: Arc<dyn Facts>,
    limit: Arc<PublishLimit>,
    checker: Arc<Checker>,
    publisher: Arc<Publisher>,
    /// Group commits for single publishes.
    coalescer: Coalescer,
}

impl EventService {
    pub fn new(
        databases: &Db,
        (facts, intake): (Arc<dyn Facts>, Option<Arc<dyn Intake>>),
        max_payload_bytes: usize,
        limit: Arc<PublishLimit>,
        (tasks, stop): (&TaskTracker, &CancellationToken),
    ) -> Self {
        let db = databases.write.clone();
        let configs = Arc::new(TenantConfigCache::default());
        // Checking reads the configuration outside the commit (a stale read
        // is caught there) but on the writer: the readers may all be held by
        // one tenant's heavy queries, and another tenant's first publish must
        // not wait behind them.
        let checker = Arc::new(Checker::new(db.clone(), max_payload_bytes, configs.clone()));
        let publisher = Arc::new(Publisher::new(db.clone(), configs, facts.clone(), intake));
        // SQLite has one writer: one group commit at a time.
        let lanes = if db.get_database_backend() == DbBackend::Sqlite {
            1
        } else {
            4
        };
        Self {
            coalescer: Coalescer::start(publisher.clone(), lanes, tasks, stop),
            checker,
            publisher,
            db,
            log: databases.log.clone(),
            facts,
            limit,
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
        let inputs = Arc::new(inputs);
        let mut attempts = 0;
        loop {
            // Checked before the commit, which sends it back when a schema
            // it was checked against changed meanwhile.
            let checked = self.checker.check(tenant, inputs.clone(), batch).await?;
            let committed = if batch {
                let results = self.publisher.commit(std::slice::from_ref(&checked)).await;
                results
                    .into_iter()
                    .next()
                    .unwrap_or(Ok(Committed::CheckAgain))
            } else {
                self.coalescer.submit(checked).await
            };
            attempts += 1;
            match committed? {
                Committed::Stored(published) => return Ok(published),
                Committed::CheckAgain if attempts < 3 => continue,
                Committed::CheckAgain => {
                    return Err(AppError::Conflict(
                        "the event type or an idempotency key changed while publishing; retry"
                            .into(),
                    ));
                }
            }
        }
    }

    /// Stores an event for exactly the given endpoints, regardless of
    /// subscriptions (test pings), those that still exist when it commits
    /// (see `removal::keep_existing`). Returns the event and its new
    /// deliveries.
    pub(crate) async fn publish_to(
        &self,
        tenant: &str,
        event_type: &str,
        data: &Value,
        webhook_id: &WebhookId,
        endpoint_ids: &[EndpointId],
    ) -> AppResult<(event::Model, Vec<delivery::Model>)> {
        let now = now_ms();
        let model = system_event(tenant, event_type, data, now);
        let deliveries: Vec<delivery::Model> = endpoint_ids
            .iter()
            .map(|endpoint_id| queue::new_delivery(&model, webhook_id, endpoint_id, now))
            .collect();
        let txn = self.db.begin().await?;
        let deliveries = removal::keep_existing(&txn, deliveries).await?;
        insert_events(&txn, std::slice::from_ref(&model)).await?;
        queue::enqueue(&txn, &deliveries, None).await?;
        txn.commit().await?;
        let count = deliveries.len() as u64;
        self.facts
            .published(std::slice::from_ref(&model), count, count);
        Ok((model, deliveries))
    }

    /// The event, from the log's reads; one the replica does not have yet
    /// (it was just published) from the primary.
    pub async fn find_in_tenant(&self, tenant: &str, id: &EventId) -> AppResult<event::Model> {
        let query =
            event::Entity::find_by_id(id.clone()).filter(event::Column::TenantId.eq(tenant));
        match self.log.read(|db| Box::pin(query.clone().one(db))).await? {
            (Some(found), _) => Ok(found),
            (None, Served::Replica) => Self::find_on(self.log.primary(), tenant, id).await,
            (None, Served::Primary) => Err(AppError::NotFound("event")),
        }
    }

    /// The event, read through `db`: the writer when it decides a change.
    pub(crate) async fn find_on<C: ConnectionTrait>(
        db: &C,
        tenant: &str,
        id: &EventId,
    ) -> AppResult<event::Model> {
        event::Entity::find_by_id(id.clone())
            .filter(event::Column::TenantId.eq(tenant))
            .one(db)
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
        let (rows, _) = self.log.read(|db| Box::pin(query.clone().all(db))).await?;
        Ok(Page::from_rows(rows, page))
    }
}

/// An event hookline itself publishes (a test ping, an operational event):
/// no labels, no idempotency key, no trace context.
pub(crate) fn system_event(tenant: &str, event_type: &str, data: &Value, now: i64) -> event::Model {
    let id = EventId::new();
    event::Model {
        body: render_body(&id, event_type, now, data),
        id,
        tenant_id: tenant.to_owned(),
        event_type: event_type.to_owned(),
        occurred_at: now,
        labels: Value::Object(Default::default()),
        idempotency_key: None,
        created_at: now,
        commit_seq: 0,
        trace_context: None,
    }
}

/// `{"id","type","timestamp","data"}`: rendered once, signed and sent as is.
pub fn render_body(id: &EventId, event_type: &str, occurred_at: i64, data: &Value) -> String {
    #[derive(Serialize)]
    struct Envelope<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        event_type: &'a str,
        timestamp: String,
        data: &'a Value,
    }
    let envelope = Envelope {
        id: id.as_str(),
        event_type,
        timestamp: to_datetime(occurred_at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        data,
    };
    serde_json::to_string(&envelope).expect("JSON values always serialize")
}
