use sea_orm::entity::prelude::*;

use crate::ids::{EndpointId, WebhookId};

/// Whether an endpoint receives deliveries. Each endpoint of a webhook has
/// its own, so one dead endpoint is disabled beside live ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum EndpointStatus {
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    /// By hookline (`410 Gone`, or every attempt failing for the configured
    /// period) or by an operator; `disabled_reason` says which.
    #[sea_orm(string_value = "DISABLED")]
    Disabled,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: EndpointId,
    pub webhook_id: WebhookId,
    pub tenant_id: String,
    pub url: String,
    /// JSON array of `[name, value]` pairs sent with every request.
    pub headers: Json,
    /// Order within the webhook, as the admin listed them.
    pub position: i32,
    pub created_at: i64,
    pub status: EndpointStatus,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<i64>,
    /// Start of the current unbroken run of failed attempts, if any.
    pub failing_since: Option<i64>,
    /// Failed attempts since the last success.
    pub consecutive_failures: i32,
    pub last_success_at: Option<i64>,
    pub last_failure_at: Option<i64>,
    /// Most requests a second, over every instance together; `None` for
    /// no limit.
    pub rate_limit_per_second: Option<i32>,
    /// When its next request may go, in epoch microseconds: the shared
    /// throttle's state, written by `domain::throttle` alone.
    pub rate_next_at_us: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::webhook::Entity",
        from = "Column::WebhookId",
        to = "super::webhook::Column::Id",
        on_delete = "Cascade"
    )]
    Webhook,
}

impl Related<super::webhook::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Webhook.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
