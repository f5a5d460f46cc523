//! A tenant's own event types. The built-in catalog lives in code, not here.

use sea_orm::entity::prelude::*;

use crate::ids::EventTypeId;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_types")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: EventTypeId,
    pub tenant_id: String,
    /// `object.action`, unique per tenant.
    pub name: String,
    pub description: String,
    /// Optional JSON Schema that published payloads must satisfy.
    pub schema: Option<Json>,
    pub archived_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
