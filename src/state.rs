//! What every request handler shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio_util::task::TaskTracker;

use crate::{
    auth::JwtKeys,
    config::Config,
    crypto::SecretBox,
    db::Db,
    domain::{
        deliveries::DeliveryService,
        event_types::EventTypeService,
        events::EventService,
        facts::Facts,
        feeds::{FeedBudget, FeedService},
        intake::Intake,
        live::LiveFeed,
        publish_limit::PublishLimit,
        recovery::{RecoveryService, RecoverySettings},
        webhooks::{WebhookRules, WebhookService},
    },
    ids::InstanceId,
    keys::Keys,
    metrics::Metrics,
};

pub struct AppState {
    /// Where changes go (see [`Db`]).
    pub db: DatabaseConnection,
    /// Where queries go (see [`Db`]).
    pub read: DatabaseConnection,
    /// Where log queries go: `read`, or a replica.
    pub log: crate::db::LogReads,
    /// Cancelled when the server begins to stop.
    pub shutdown: tokio_util::sync::CancellationToken,
    pub config: Config,
    pub jwt: JwtKeys,
    pub secrets: SecretBox,
    /// Live streams for subscriptions.
    pub live: Arc<dyn LiveFeed>,
    pub event_types: EventTypeService,
    pub webhooks: WebhookService,
    pub events: EventService,
    pub deliveries: DeliveryService,
    pub recoveries: RecoveryService,
    pub publish_limit: Arc<PublishLimit>,
    pub feeds: FeedService,
    pub metrics: Arc<Metrics>,
    /// Where this server is reached, for links it hands out.
    public_url: std::sync::OnceLock<String>,
}

/// What the services are wired to: built by [`crate::run`] before them.
pub struct Wiring {
    /// Where domain tells what it committed.
    pub facts: Arc<dyn Facts>,
    /// This instance's id, stamped on what it leases.
    pub instance: InstanceId,
    /// This instance's delivery worker, taking new deliveries at their
    /// commit (none on an instance without one).
    pub intake: Option<Arc<dyn Intake>>,
    pub live: Arc<dyn LiveFeed>,
    pub metrics: Arc<Metrics>,
    pub secrets: SecretBox,
    /// Owns the services' background tasks.
    pub tasks: TaskTracker,
    /// Cancelled when the server begins to stop.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl AppState {
    pub fn new(databases: Db, config: Config, keys: &Keys, wiring: Wiring) -> Self {
        let Wiring {
            facts,
            instance,
            intake,
            live,
            metrics,
            secrets,
            tasks,
            shutdown,
        } = wiring;
        let db = databases.write.clone();
        let event_types = EventTypeService::new(&databases);
        let publish_limit = Arc::new(PublishLimit::new(config.publish_rate));
        let events = EventService::new(
            &databases,
            (facts.clone(), intake),
            config.max_payload_bytes,
            publish_limit.clone(),
            (&tasks, &shutdown),
        );
        let recovery = RecoverySettings {
            batch: config.recovery_batch,
            in_flight: config.recovery_in_flight,
        };
        let recoveries = RecoveryService::new(
            &databases,
            facts.clone(),
            (instance, recovery),
            (&tasks, &shutdown),
        );
        let deliveries = DeliveryService::new(&databases, events.clone(), facts.clone());
        let rules = WebhookRules {
            allow_private_endpoints: config.allow_private_endpoints,
            max_webhooks_per_tenant: config.max_webhooks_per_tenant,
            max_webhooks_per_partner: config.access.max_webhooks_per_partner,
            secret_rotation_grace: config.secret_rotation_grace,
        };
        let webhooks = WebhookService::new(
            &databases,
            (event_types.clone(), secrets.clone()),
            rules,
            facts.clone(),
        );
        let feeds = FeedService::new(
            &databases,
            FeedBudget::new(
                config.max_response_bytes,
                config.max_response_bytes_in_flight,
            ),
        );
        Self {
            shutdown,
            jwt: JwtKeys::new(&keys.jwt_secret).with_provider(config.access.provider()),
            db,
            read: databases.read,
            log: databases.log,
            config,
            secrets,
            live,
            event_types,
            webhooks,
            events,
            deliveries,
            recoveries,
            publish_limit,
            feeds,
            metrics,
            public_url: std::sync::OnceLock::new(),
        }
    }

    /// `HOOKLINE_PUBLIC_URL`, or the address this instance listens on.
    pub fn public_url(&self) -> &str {
        self.public_url.get().map(String::as_str).unwrap_or("")
    }

    pub(crate) fn set_public_url(&self, url: String) {
        let _ = self.public_url.set(url.trim_end_matches('/').to_owned());
    }
}
