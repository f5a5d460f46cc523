use sea_orm::entity::prelude::*;

use crate::ids::{EndpointId, InstanceId, RecoveryJobId, WebhookId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum RecoveryState {
    /// Still re-queueing (or waiting for its deliveries to drain).
    #[sea_orm(string_value = "RUNNING")]
    Running,
    /// Every matching delivery was re-queued.
    #[sea_orm(string_value = "COMPLETED")]
    Completed,
    /// Stopped by an operator; what it had re-queued stays queued.
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

/// A recovery: re-queues the settled deliveries of one webhook (or one of
/// its endpoints) created in `[since, until)` whose status is one of
/// `statuses`, in delivery id order, a chunk at a time.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "recovery_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: RecoveryJobId,
    pub tenant_id: String,
    pub webhook_id: WebhookId,
    /// Only this endpoint's deliveries, when set.
    pub endpoint_id: Option<EndpointId>,
    pub since: i64,
    pub until: Option<i64>,
    /// Comma-separated delivery statuses, e.g. `FAILED,CANCELLED`.
    pub statuses: String,
    pub state: RecoveryState,
    /// The last delivery id gone through; the next chunk starts after it.
    pub cursor: Option<String>,
    /// Deliveries that matched when the job was created.
    pub total: i64,
    /// Deliveries re-queued so far.
    pub queued: i64,
    /// The instance running the job, until `lease_until`.
    pub leased_by: Option<InstanceId>,
    pub lease_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
