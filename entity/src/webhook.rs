use sea_orm::entity::prelude::*;

use crate::ids::WebhookId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum WebhookStatus {
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    #[sea_orm(string_value = "PAUSED")]
    Paused,
    /// Set by hookline itself after `410 Gone` or persistent failure.
    #[sea_orm(string_value = "DISABLED")]
    Disabled,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: WebhookId,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub status: WebhookStatus,
    /// Why the system disabled the webhook, when it did.
    pub disabled_reason: Option<String>,
    /// JSON array of patterns: exact names, `object.*` or `*`.
    pub event_types: Json,
    /// JSON object of label -> value, or list of values allowed; every
    /// label named must match.
    pub label_filter: Option<Json>,
    /// Conditions on the event's `data` (`domain::data_filter`), as saved.
    pub data_filter: Option<Json>,
    /// Ordered delivery: `None` for none, `''` for one sequence per
    /// endpoint, or the label whose value keys the sequences.
    pub ordering: Option<String>,
    pub team: Option<String>,
    pub created_by: String,
    /// The partner login the webhook belongs to (seed 002's "For Login"):
    /// that partner manages it, and it receives only events whose partner
    /// label carries the login. `None` for the network's own webhooks.
    pub for_login: Option<String>,
    /// The current signing secret, encrypted (never the plain `whsec_` value).
    pub secret: String,
    /// The secret replaced by the last rotation, encrypted; still signs until
    /// `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<i64>,
    /// The `whpk_…` public key when it signs with ed25519 (`v1a`); `None`
    /// for a shared HMAC secret.
    pub public_key: Option<String>,
    /// `ENVELOPE` (NULL), `DATA_ONLY` or `TEMPLATE` (see `domain::payload`).
    pub payload_format: Option<String>,
    /// The body template of a `TEMPLATE` webhook, as saved (checked then).
    pub body_template: Option<String>,
    /// `POST` (NULL), `GET` or `POST_FORM`.
    pub http_method: Option<String>,
    pub max_attempts: i32,
    pub initial_interval_ms: i64,
    pub max_interval_ms: i64,
    pub timeout_ms: i32,
    /// Start of the current unbroken run of failed attempts, if any.
    pub failing_since: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::endpoint::Entity")]
    Endpoint,
}

impl Related<super::endpoint::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Endpoint.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
