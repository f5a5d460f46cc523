use sea_orm::entity::prelude::*;

use crate::ids::EventId;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: EventId,
    pub tenant_id: String,
    pub event_type: String,
    pub occurred_at: i64,
    /// The exact JSON body every endpoint receives, rendered once at publish
    /// time: `{"id","type","timestamp","data"}`.
    pub body: String,
    /// JSON object of label -> value, matched against webhooks' label filters.
    pub labels: Json,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    /// Where the event stands in commit order (see the migration that added
    /// it); assigned when it is inserted, 0 on a model not yet stored.
    pub commit_seq: i64,
    /// The W3C `traceparent` the event was published under, continued by
    /// its delivery attempts; `None` without tracing.
    pub trace_context: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
