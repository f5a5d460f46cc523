use sea_orm::entity::prelude::*;

use crate::ids::{DeliveryId, EndpointId, EventId, RecoveryJobId, WebhookId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum DeliveryStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    #[sea_orm(string_value = "RETRYING")]
    Retrying,
    #[sea_orm(string_value = "FAILED")]
    Failed,
    #[sea_orm(string_value = "CANCELLED")]
    Cancelled,
}

impl DeliveryStatus {
    /// Whether the worker still has something to do for a delivery in this status.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Retrying)
    }
}

/// One event to one endpoint: its log entry, written when it is made and
/// when an attempt (or an operator) settles it. While it is open (PENDING or
/// RETRYING) it also has a row in `delivery_queue`, which the worker claims
/// (see `hookline::domain::queue`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: DeliveryId,
    pub tenant_id: String,
    pub event_id: EventId,
    pub webhook_id: WebhookId,
    pub endpoint_id: EndpointId,
    pub status: DeliveryStatus,
    pub attempt_count: i32,
    /// When its next attempt is due, as last scheduled; `None` while it
    /// waits behind an earlier delivery of its sequence, and once settled.
    pub next_attempt_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_response_status: Option<i32>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The recovery job that last re-queued it, if any.
    pub recovery_job_id: Option<RecoveryJobId>,
    /// For a webhook with ordered delivery: the sequence it belongs to (a
    /// label's value, or `''`). `None`: delivered with no regard to order.
    pub ordering_key: Option<String>,
    /// Its place in that sequence, before its id: set by the database when
    /// the row is inserted (see the migration that added it).
    pub ordering_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
