mod deliveries;
mod endpoints;
mod event_types;
mod events;
mod feeds;
mod portal;
mod recovery;
mod webhooks;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
pub struct Mutation(
    event_types::EventTypeMutation,
    webhooks::WebhookMutation,
    endpoints::EndpointMutation,
    events::EventMutation,
    deliveries::DeliveryMutation,
    feeds::FeedMutation,
    recovery::RecoveryMutation,
    portal::PortalMutation,
);
