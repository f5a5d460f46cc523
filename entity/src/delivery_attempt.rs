use sea_orm::entity::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum AttemptOutcome {
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "delivery_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub delivery_id: String,
    pub attempt_number: i32,
    /// The URL the request went to, as it was at the time.
    pub endpoint_url: String,
    pub outcome: AttemptOutcome,
    pub started_at: i64,
    pub duration_ms: i32,
    pub response_status: Option<i32>,
    /// The first 4 KiB of the response body, lossily decoded as UTF-8, NUL
    /// as U+FFFD.
    pub response_body: Option<String>,
    /// `TIMEOUT`, `CONNECTION`, `TLS`, `DNS`, `BLOCKED_ADDRESS`, `NON_2XX`, ...
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub next_attempt_at: Option<i64>,
    /// The hookline instance that made the attempt.
    pub instance_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
