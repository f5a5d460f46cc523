//! What every request handler shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    auth::JwtKeys,
    bus::{Bus, BusQueues},
    config::Config,
    crypto::SecretBox,
    db::Db,
    domain::{
        deliveries::DeliveryService,
        event_types::EventTypeService,
        events::EventService,
        feeds::FeedService,
        publish_limit::PublishLimit,
        webhooks::{WebhookRules, WebhookService},
    },
    keys::Keys,
    metrics::Metrics,
};

pub struct AppState {
    /// Where changes go (see [`Db`]).
    pub db: DatabaseConnection,
    /// Where queries go (see [`Db`]).
    pub read: DatabaseConnection,
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
    pub publish_limit: Arc<PublishLimit>,
    pub feeds: FeedService,
    pub metrics: Arc<Metrics>,
    /// Where this server is reached, for links it hands out.
    public_url: std::sync::OnceLock<String>,
}

impl AppState {
    /// The state, and the queues of the bus's background tasks (which [`crate::run`]
    /// starts). News is relayed between instances on PostgreSQL.
    pub fn new(databases: Db, config: Config, keys: &Keys) -> (Self, BusQueues) {
        let secrets = SecretBox::new(&keys.encryption_key);
        let db = databases.write.clone();
        let relayed =
            sea_orm::ConnectionTrait::get_database_backend(&db) == sea_orm::DbBackend::Postgres;
        let (bus, queues) = Bus::new(config.subscriber_buffer as usize, relayed);
        let bus = Arc::new(bus);
        let event_types = EventTypeService::new(&databases);
        let metrics = Arc::new(Metrics::new());
        let publish_limit = Arc::new(PublishLimit::new(config.publish_rate));
        let events = EventService::new(
            &databases,
            bus.clone(),
            config.max_payload_bytes,
            publish_limit.clone(),
            metrics.clone(),
        );
        let deliveries = DeliveryService::new(&databases, events.clone(), bus.clone());
        let rules = WebhookRules {
            allow_private_endpoints: config.allow_private_endpoints,
            max_webhooks_per_tenant: config.max_webhooks_per_tenant,
            secret_rotation_grace: config.secret_rotation_grace,
        };
        let webhooks = WebhookService::new(&databases, event_types.clone(), secrets.clone(), rules);
        let feeds = FeedService::new(&databases);
        let state = Self {
            shutdown: tokio_util::sync::CancellationToken::new(),
            jwt: JwtKeys::new(&keys.jwt_secret),
            db,
            read: databases.read,
            config,
            secrets,
            bus,
            event_types,
            webhooks,
            events,
            deliveries,
            publish_limit,
            feeds,
            metrics,
            public_url: std::sync::OnceLock::new(),
        };
        (state, queues)
    }

    /// `HOOKLINE_PUBLIC_URL`, or the address this instance listens on.
    pub fn public_url(&self) -> &str {
        self.public_url.get().map(String::as_str).unwrap_or("")
    }

    pub(crate) fn set_public_url(&self, url: String) {
        let _ = self.public_url.set(url.trim_end_matches('/').to_owned());
    }
}
