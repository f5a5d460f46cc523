//! A link a third party polls for a webhook's events (seed 002's "pull"
//! link). The token itself is never stored, only its SHA-256.

use sea_orm::entity::prelude::*;

use crate::ids::{FeedLinkId, WebhookId};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "feed_links")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: FeedLinkId,
    pub tenant_id: String,
    pub webhook_id: WebhookId,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
