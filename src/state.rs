//! What every request handler shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    auth::JwtKeys,
    bus::{Bus, BusQueues},
    config::Config,
    crypto::SecretBox,
    domain::{
        deliveries::DeliveryService,
        event_types::EventTypeService,
        events::EventService,
        webhooks::{WebhookRules, WebhookService},
    },
    keys::Keys,
};

pub struct AppState {
    pub db: DatabaseConnection,
    /// Cancelled when the server begins to stop.
    pub shutdown: tokio_util::sync::CancellationToken,
    pub config: Config,
    pub jwt: JwtKeys,
    pub secrets: SecretBox,
    pub bus: Arc<Bus>,
    pub event_types: EventTypeService,
    pub webhooks: WebhookService,
    pub events: EventService,
    pub deliveries: DeliveryService,
}

impl AppState {
    /// The state, and the queues of the bus's background tasks (which [`crate::run`]
    /// starts). News is relayed between instances on PostgreSQL.
    pub fn new(db: DatabaseConnection, config: Config, keys: &Keys) -> (Self, BusQueues) {
        let secrets = SecretBox::new(&keys.encryption_key);
        let relayed =
            sea_orm::ConnectionTrait::get_database_backend(&db) == sea_orm::DbBackend::Postgres;
        let (bus, queues) = Bus::new(config.subscriber_buffer as usize, relayed);
        let bus = Arc::new(bus);
        let event_types = EventTypeService::new(db.clone());
        let events = EventService::new(
            db.clone(),
            event_types.clone(),
            bus.clone(),
            config.max_payload_bytes,
        );
        let deliveries = DeliveryService::new(db.clone(), events.clone(), bus.clone());
        let rules = WebhookRules {
            allow_private_endpoints: config.allow_private_endpoints,
            max_webhooks_per_tenant: config.max_webhooks_per_tenant,
            secret_rotation_grace: config.secret_rotation_grace,
        };
        let webhooks = WebhookService::new(db.clone(), event_types.clone(), secrets.clone(), rules);
        let state = Self {
            shutdown: tokio_util::sync::CancellationToken::new(),
            jwt: JwtKeys::new(&keys.jwt_secret),
            db,
            config,
            secrets,
            bus,
            event_types,
            webhooks,
            events,
            deliveries,
        };
        (state, queues)
    }
}
