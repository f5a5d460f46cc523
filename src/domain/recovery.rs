//! `recoverDeliveries`: after an outage on the receiving side, re-queue the
//! deliveries of a webhook (or of one of its endpoints) that ended FAILED or
//! CANCELLED (or any settled statuses asked for) in a time window.
//!
//! A recovery is a job row, not a request: it is answered at once with the
//! job, and [`runner`] re-queues its deliveries in the background, a chunk
//! at a time, each chunk and the job's cursor and count in one transaction.
//! So a restart, or another instance taking over, goes on exactly where the
//! last committed chunk ended: nothing is re-queued twice by one job and
//! nothing is skipped. At most `HOOKLINE_RECOVERY_IN_FLIGHT` of a job's
//! deliveries are open at once, so a recovery of a million deliveries
//! trickles into the queue beside live traffic instead of burying it.
//!
//! Unlike `replayWebhook`, which makes new deliveries of stored events, a
//! recovery re-opens the deliveries themselves, as `retryDelivery` does one
//! at a time: each keeps its attempts, and its next failure counts on from
//! there. Deliveries to endpoints that are disabled are left alone (the
//! worker would only cancel them again); enable the endpoint first.

pub mod runner;

use std::sync::Arc;

use entity::{
    delivery::{self, DeliveryStatus},
    endpoint::{self, EndpointStatus},
    recovery_job::{self, RecoveryState},
    webhook::WebhookStatus,
};
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, Statement, TransactionTrait, sea_query::Query,
};
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{facts::Facts, webhooks::WebhookService};
use crate::{
    db::Db,
    error::{AppError, AppResult},
    ids::{DeliveryId, EndpointId, InstanceId, RecoveryJobId, WebhookId},
    time::now_ms,
};

pub use runner::RecoverySettings;

/// Running recoveries one tenant may have at once.
pub const MAX_RUNNING_PER_TENANT: u64 = 5;
/// Most jobs one listing returns.
pub const MAX_LISTED: u64 = 100;
/// How far before a window's start its first delivery id may have been
/// made: a delivery's id and its `created_at` are read from the clock at
/// nearly the same moment, never a minute apart.
const ID_CLOCK_SLACK_MS: i64 = 60_000;

/// What to recover.
#[derive(Clone, Debug)]
pub struct RecoveryRequest {
    pub webhook_id: Option<WebhookId>,
    pub endpoint_id: Option<EndpointId>,
    /// Deliveries created at or after this (epoch ms)...
    pub since: i64,
    /// ...and before this, when given.
    pub until: Option<i64>,
    /// Settled deliveries with these statuses are re-queued.
    pub statuses: Vec<DeliveryStatus>,
}

impl RecoveryRequest {
    /// FAILED and CANCELLED: what did not arrive.
    pub const DEFAULT_STATUSES: [DeliveryStatus; 2] =
        [DeliveryStatus::Failed, DeliveryStatus::Cancelled];

    fn check(&self) -> AppResult<()> {
        if self.webhook_id.is_some() == self.endpoint_id.is_some() {
            return Err(AppError::bad_input(
                "filter",
                "give exactly one of `webhookId` and `endpointId`",
            ));
        }
        if self.statuses.is_empty() {
            return Err(AppError::bad_input("filter.statuses", "must not be empty"));
        }
        if self.statuses.iter().any(|status| status.is_open()) {
            return Err(AppError::bad_input(
                "filter.statuses",
                "PENDING and RETRYING deliveries are still being attempted; choose among SUCCEEDED, FAILED and CANCELLED",
            ));
        }
        if self.until.is_some_and(|until| until <= self.since) {
            return Err(AppError::bad_input("filter.until", "must be after `since`"));
        }
        Ok(())
    }
}

/// Which deliveries a job re-queues: its filter, as stored on its row.
#[derive(Clone, Debug)]
pub struct Scope {
    pub tenant: String,
    pub webhook_id: WebhookId,
    pub endpoint_id: Option<EndpointId>,
    pub since: i64,
    pub until: Option<i64>,
    pub statuses: Vec<DeliveryStatus>,
}

impl Scope {
    pub fn of(job: &recovery_job::Model) -> Self {
        Self {
            tenant: job.tenant_id.clone(),
            webhook_id: job.webhook_id.clone(),
            endpoint_id: job.endpoint_id.clone(),
            since: job.since,
            until: job.until,
            statuses: parse_statuses(&job.statuses),
        }
    }

    /// The matching deliveries, to active endpoints of the webhook, in the
    /// order a job goes through them (by id, so by age).
    pub fn matching(&self) -> Select<delivery::Entity> {
        let active_endpoints = Query::select()
            .column(endpoint::Column::Id)
            .from(endpoint::Entity)
            .and_where(endpoint::Column::WebhookId.eq(self.webhook_id.as_str()))
            .and_where(endpoint::Column::Status.eq(EndpointStatus::Active))
            .to_owned();
        let mut query = delivery::Entity::find()
            .filter(delivery::Column::TenantId.eq(self.tenant.as_str()))
            .filter(delivery::Column::WebhookId.eq(self.webhook_id.as_str()))
            .filter(delivery::Column::Id.gte(DeliveryId::floor_at(self.since - ID_CLOCK_SLACK_MS)))
            .filter(delivery::Column::CreatedAt.gte(self.since))
            .filter(delivery::Column::Status.is_in(self.statuses.iter().copied()))
            .filter(delivery::Column::EndpointId.in_subquery(active_endpoints));
        if let Some(endpoint_id) = &self.endpoint_id {
            query = query.filter(delivery::Column::EndpointId.eq(endpoint_id.as_str()));
        }
        if let Some(until) = self.until {
            query = query.filter(delivery::Column::CreatedAt.lt(until));
        }
        query.order_by_asc(delivery::Column::Id)
    }
}

fn parse_statuses(text: &str) -> Vec<DeliveryStatus> {
    text.split(',')
        .filter_map(|status| DeliveryStatus::try_from_value(&status.to_owned()).ok())
        .collect()
}

/// Where a job's re-queued deliveries stand now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Re-queued and not settled yet.
    pub open: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

/// How many of `job`'s deliveries are in each status (those a later job
/// re-queued again count for that job).
pub async fn outcomes<C: ConnectionTrait>(db: &C, job: &RecoveryJobId) -> Result<Outcomes, DbErr> {
    let rows: Vec<(DeliveryStatus, i64)> = delivery::Entity::find()
        .select_only()
        .column(delivery::Column::Status)
        .column_as(delivery::Column::Id.count(), "count")
        .filter(delivery::Column::RecoveryJobId.eq(job.as_str()))
        .group_by(delivery::Column::Status)
        .into_tuple()
        .all(db)
        .await?;
    let mut outcomes = Outcomes::default();
    for (status, count) in rows {
        let count = u64::try_from(count).unwrap_or(0);
        match status {
            DeliveryStatus::Pending | DeliveryStatus::Retrying => outcomes.open += count,
            DeliveryStatus::Succeeded => outcomes.succeeded = count,
            DeliveryStatus::Failed => outcomes.failed = count,
            DeliveryStatus::Cancelled => outcomes.cancelled = count,
        }
    }
    Ok(outcomes)
}

#[derive(Clone)]
pub struct RecoveryService {
    db: DatabaseConnection,
    read: DatabaseConnection,
    /// Tells this instance's runner that a job was created.
    created: Arc<Notify>,
}

impl RecoveryService {
    /// The service, and its runner started under `tasks` until `stop`.
    pub fn new(
        databases: &Db,
        facts: Arc<dyn Facts>,
        (instance, settings): (InstanceId, RecoverySettings),
        (tasks, stop): (&TaskTracker, &CancellationToken),
    ) -> Self {
        let created = Arc::new(Notify::new());
        let runner = runner::Runner {
            db: databases.write.clone(),
            facts,
            instance,
            settings,
            created: created.clone(),
        };
        tasks.spawn(runner.run(stop.clone()));
        Self {
            db: databases.write.clone(),
            read: databases.read.clone(),
            created,
        }
    }

    /// Starts a recovery: checks the request, counts what it matches now,
    /// and stores the job for a runner to take.
    pub async fn start(
        &self,
        tenant: &str,
        request: &RecoveryRequest,
    ) -> AppResult<recovery_job::Model> {
        request.check()?;
        let scope = self.scope(tenant, request).await?;
        let total = scope.matching().count(&self.db).await?;
        // The running ones are counted and the job stored in one
        // transaction, one start of the tenant's at a time: counted apart,
        // starts asked for at once all passed the cap.
        let txn = self.db.begin().await?;
        one_start_at_a_time(&txn, tenant).await?;
        let running = recovery_job::Entity::find()
            .filter(recovery_job::Column::TenantId.eq(tenant))
            .filter(recovery_job::Column::State.eq(RecoveryState::Running))
            .count(&txn)
            .await?;
        if running >= MAX_RUNNING_PER_TENANT {
            // Ended now, not when dropped: until then it holds the lock the
            // tenant's next start waits for.
            txn.rollback().await?;
            return Err(AppError::Conflict(format!(
                "{running} recoveries are already running; wait for one to finish or cancel one"
            )));
        }
        let now = now_ms();
        let statuses: Vec<String> = scope.statuses.iter().map(ActiveEnum::to_value).collect();
        let job = recovery_job::ActiveModel {
            id: Set(RecoveryJobId::new()),
            tenant_id: Set(tenant.to_owned()),
            webhook_id: Set(scope.webhook_id),
            endpoint_id: Set(scope.endpoint_id),
            since: Set(scope.since),
            until: Set(scope.until),
            statuses: Set(statuses.join(",")),
            state: Set(RecoveryState::Running),
            cursor: Set(None),
            total: Set(i64::try_from(total).unwrap_or(i64::MAX)),
            queued: Set(0),
            leased_by: Set(None),
            lease_until: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            finished_at: Set(None),
        };
        let job = recovery_job::Entity::insert(job)
            .exec_with_returning(&txn)
            .await?;
        txn.commit().await?;
        self.created.notify_one();
        Ok(job)
    }

    /// The request's scope: the webhook must be active, and an endpoint
    /// asked for must be one of the tenant's and active.
    async fn scope(&self, tenant: &str, request: &RecoveryRequest) -> AppResult<Scope> {
        let (webhook_id, endpoint_id) = match (&request.webhook_id, &request.endpoint_id) {
            (Some(webhook_id), _) => (webhook_id.clone(), None),
            (None, Some(endpoint_id)) => {
                let found = endpoint::Entity::find_by_id(endpoint_id.clone())
                    .filter(endpoint::Column::TenantId.eq(tenant))
                    .one(&self.db)
                    .await?
                    .ok_or(AppError::NotFound("endpoint"))?;
                if found.status != EndpointStatus::Active {
                    return Err(AppError::Conflict(
                        "the endpoint is DISABLED; enable it first".into(),
                    ));
                }
                (found.webhook_id, Some(found.id))
            }
            (None, None) => return Err(AppError::bad_input("filter", "no webhook or endpoint")),
        };
        let webhook = WebhookService::find_in_tenant(&self.db, tenant, &webhook_id).await?;
        if webhook.status != WebhookStatus::Active {
            return Err(AppError::Conflict(format!(
                "the webhook is {}; set it ACTIVE first",
                webhook.status.to_value()
            )));
        }
        Ok(Scope {
            tenant: tenant.to_owned(),
            webhook_id,
            endpoint_id,
            since: request.since,
            until: request.until,
            statuses: request.statuses.clone(),
        })
    }

    pub async fn find(&self, tenant: &str, id: &RecoveryJobId) -> AppResult<recovery_job::Model> {
        recovery_job::Entity::find_by_id(id.clone())
            .filter(recovery_job::Column::TenantId.eq(tenant))
            .one(&self.read)
            .await?
            .ok_or(AppError::NotFound("recovery job"))
    }

    /// The tenant's recoveries (of one webhook, when given), newest first.
    pub async fn list(
        &self,
        tenant: &str,
        webhook_id: Option<&WebhookId>,
        first: u64,
    ) -> AppResult<Vec<recovery_job::Model>> {
        let mut query =
            recovery_job::Entity::find().filter(recovery_job::Column::TenantId.eq(tenant));
        if let Some(webhook_id) = webhook_id {
            query = query.filter(recovery_job::Column::WebhookId.eq(webhook_id.as_str()));
        }
        Ok(query
            .order_by_desc(recovery_job::Column::Id)
            .limit(first.min(MAX_LISTED))
            .all(&self.read)
            .await?)
    }

    /// Stops a running recovery; what it re-queued stays queued. A chunk
    /// being re-queued at that moment is rolled back (see [`runner`]).
    pub async fn cancel(&self, tenant: &str, id: &RecoveryJobId) -> AppResult<recovery_job::Model> {
        let now = now_ms();
        let result = recovery_job::Entity::update_many()
            .col_expr(
                recovery_job::Column::State,
                sea_orm::sea_query::Expr::value(RecoveryState::Cancelled),
            )
            .col_expr(
                recovery_job::Column::FinishedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .col_expr(
                recovery_job::Column::UpdatedAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(recovery_job::Column::Id.eq(id.as_str()))
            .filter(recovery_job::Column::TenantId.eq(tenant))
            .filter(recovery_job::Column::State.eq(RecoveryState::Running))
            .exec(&self.db)
            .await?;
        let job = recovery_job::Entity::find_by_id(id.clone())
            .filter(recovery_job::Column::TenantId.eq(tenant))
            .one(&self.db)
            .await?
            .ok_or(AppError::NotFound("recovery job"))?;
        if result.rows_affected == 0 {
            return Err(AppError::Conflict(format!(
                "the recovery is already {}",
                job.state.to_value()
            )));
        }
        Ok(job)
    }

    /// Where the job's re-queued deliveries stand now.
    pub async fn outcomes(&self, job: &RecoveryJobId) -> AppResult<Outcomes> {
        Ok(outcomes(&self.read, job).await?)
    }
}

/// Holds, until `txn` ends, the lock that lets one recovery of `tenant`
/// start at a time (PostgreSQL; SQLite's one writer runs its transactions
/// one at a time anyway).
async fn one_start_at_a_time(txn: &DatabaseTransaction, tenant: &str) -> Result<(), DbErr> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            [START_LOCK_SPACE.into(), tenant.into()],
        ))
        .await?;
    }
    Ok(())
}

/// The first key of the two-key advisory locks [`one_start_at_a_time`]
/// takes (another space than hookline's one-key locks).
const START_LOCK_SPACE: i32 = 0x7263_7679; // "rcvy"
