use async_graphql::{Context, Json, Object, Result};
use chrono::{DateTime, Utc};

use super::datetime;
use crate::{
    domain::{event_types::EventTypeView, patterns},
    graphql::budget,
};

/// A kind of event, `object.action`: built into hookline's affiliate catalog
/// or defined by the tenant.
pub struct EventType(pub EventTypeView);

#[Object]
impl EventType {
    /// `object.action`, e.g. `conversion.status_changed`.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The object part, e.g. `conversion`: what a UI offers in an object picker.
    async fn object(&self) -> &str {
        patterns::object_of(&self.0.name)
    }

    /// The action part, e.g. `status_changed`.
    async fn action(&self) -> &str {
        patterns::action_of(&self.0.name)
    }

    async fn description(&self) -> &str {
        &self.0.description
    }

    /// JSON Schema that published payloads must satisfy, if any.
    async fn schema(&self, ctx: &Context<'_>) -> Result<Option<Json<serde_json::Value>>> {
        if let Some(schema) = &self.0.schema {
            // At most 64 KiB, measured as stored.
            budget::charge(ctx, serde_json::to_vec(schema).map_or(0, |b| b.len()))?;
        }
        Ok(self.0.schema.clone().map(Json))
    }

    /// Part of hookline's catalog (read-only), rather than the tenant's own.
    async fn built_in(&self) -> bool {
        self.0.builtin
    }

    async fn archived(&self) -> bool {
        self.0.archived_at.is_some()
    }

    async fn archived_at(&self) -> Option<DateTime<Utc>> {
        self.0.archived_at.map(datetime)
    }

    /// When the tenant created it; null for built-in types.
    async fn created_at(&self) -> Option<DateTime<Utc>> {
        self.0.created_at.map(datetime)
    }

    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.updated_at.map(datetime)
    }
}
