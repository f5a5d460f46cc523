//! What every request handler shares.

use sea_orm::DatabaseConnection;

use crate::{
    auth::JwtKeys,
    config::Config,
    crypto::SecretBox,
    domain::{
        event_types::EventTypeService,
        webhooks::{WebhookRules, WebhookService},
    },
    keys::Keys,
};

pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Config,
    pub jwt: JwtKeys,
    pub event_types: EventTypeService,
    pub webhooks: WebhookService,
}

impl AppState {
    pub fn new(db: DatabaseConnection, config: Config, keys: &Keys) -> Self {
        let secrets = SecretBox::new(&keys.encryption_key);
        let event_types = EventTypeService::new(db.clone());
        let rules = WebhookRules {
            allow_private_endpoints: config.allow_private_endpoints,
            max_webhooks_per_tenant: config.max_webhooks_per_tenant,
            secret_rotation_grace: config.secret_rotation_grace,
        };
        let webhooks = WebhookService::new(db.clone(), event_types.clone(), secrets, rules);
        Self {
            jwt: JwtKeys::new(&keys.jwt_secret),
            db,
            config,
            event_types,
            webhooks,
        }
    }
}
