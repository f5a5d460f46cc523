//! What every request handler shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    auth::JwtKeys,
    bus::Bus,
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
    pub fn new(db: DatabaseConnection, config: Config, keys: &Keys) -> Self {
        let secrets = SecretBox::new(&keys.encryption_key);
        let bus = Arc::new(Bus::new());
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
        Self {
            jwt: JwtKeys::new(&keys.jwt_secret),
            db,
            config,
            secrets,
            bus,
            event_types,
            webhooks,
            events,
            deliveries,
        }
    }
}
