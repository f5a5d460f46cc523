//! A running hookline worker, known by its heartbeat.

use sea_orm::entity::prelude::*;

use crate::ids::InstanceId;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "instances")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: InstanceId,
    /// Host name, for operators reading the table.
    pub host: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
