use async_graphql::{ID, Object};
use chrono::{DateTime, Utc};
use entity::feed_link;

use super::datetime;

/// A link a third party polls for a webhook's events (`GET /feeds/{token}`).
pub struct FeedLink(pub feed_link::Model);

#[Object]
impl FeedLink {
    async fn id(&self) -> ID {
        self.0.id.clone().into()
    }

    async fn webhook_id(&self) -> ID {
        self.0.webhook_id.clone().into()
    }

    async fn created_by(&self) -> &str {
        &self.0.created_by
    }

    async fn created_at(&self) -> DateTime<Utc> {
        datetime(self.0.created_at)
    }

    /// Set once revoked; a revoked link answers 404.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at.map(datetime)
    }

    async fn active(&self) -> bool {
        self.0.revoked_at.is_none()
    }

    /// When the feed was last read.
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at.map(datetime)
    }
}
