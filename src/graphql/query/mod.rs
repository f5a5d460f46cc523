mod deliveries;
mod event_types;
mod events;
mod recovery;
mod viewer;
mod webhooks;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
pub struct Query(
    viewer::ViewerQuery,
    event_types::EventTypeQuery,
    webhooks::WebhookQuery,
    events::EventQuery,
    deliveries::DeliveryQuery,
    recovery::RecoveryQuery,
);
