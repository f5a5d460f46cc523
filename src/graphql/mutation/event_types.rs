use async_graphql::{Context, InputObject, Json, MaybeUndefined, Object, Result};
use serde_json::Value;

use crate::{
    auth::Role,
    domain::event_types::{EventTypePatch, NewEventType},
    graphql::{context::ContextExt, types::event_type::EventType},
};

#[derive(InputObject)]
pub struct CreateEventTypeInput {
    /// `object.action`, lowercase, e.g. `invoice.paid`.
    name: String,
    description: String,
    /// JSON Schema for the payload; publishing refuses data that fails it. At
    /// most 64 KiB, 100 branches per `allOf`/`anyOf`/`oneOf`, and a weight
    /// of 2 000 subschemas (`$ref`s expanded), `enum` values and `required`
    /// names; `$ref` only inside the schema and never in a cycle.
    schema: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct UpdateEventTypeInput {
    description: Option<String>,
    /// A new schema (same bounds as when creating), or null to remove it.
    schema: MaybeUndefined<Json<Value>>,
}

#[derive(Default)]
pub struct EventTypeMutation;

#[Object]
impl EventTypeMutation {
    /// Adds a tenant-specific event type. Admin only.
    async fn create_event_type(
        &self,
        ctx: &Context<'_>,
        input: CreateEventTypeInput,
    ) -> Result<EventType> {
        let principal = ctx.require(Role::Admin)?;
        let created = ctx
            .state()
            .event_types
            .create(
                &principal.tenant,
                NewEventType {
                    name: input.name,
                    description: input.description,
                    schema: input.schema.map(|s| s.0),
                },
            )
            .await?;
        Ok(EventType(created))
    }

    /// Changes a custom type's description or schema. Admin only.
    async fn update_event_type(
        &self,
        ctx: &Context<'_>,
        name: String,
        input: UpdateEventTypeInput,
    ) -> Result<EventType> {
        let principal = ctx.require(Role::Admin)?;
        let patch = EventTypePatch {
            description: input.description,
            schema: match input.schema {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(schema) => Some(Some(schema.0)),
            },
        };
        let updated = ctx
            .state()
            .event_types
            .update(&principal.tenant, &name, patch)
            .await?;
        Ok(EventType(updated))
    }

    /// Hides a custom type from listings and new subscriptions; existing
    /// webhooks and publishers keep working. Admin only.
    async fn archive_event_type(&self, ctx: &Context<'_>, name: String) -> Result<EventType> {
        let principal = ctx.require(Role::Admin)?;
        let updated = ctx
            .state()
            .event_types
            .set_archived(&principal.tenant, &name, true)
            .await?;
        Ok(EventType(updated))
    }

    /// Brings an archived type back. Admin only.
    async fn unarchive_event_type(&self, ctx: &Context<'_>, name: String) -> Result<EventType> {
        let principal = ctx.require(Role::Admin)?;
        let updated = ctx
            .state()
            .event_types
            .set_archived(&principal.tenant, &name, false)
            .await?;
        Ok(EventType(updated))
    }
}
