mod event_types;
mod webhooks;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
pub struct Mutation(event_types::EventTypeMutation, webhooks::WebhookMutation);
