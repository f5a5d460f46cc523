//! hookline: webhook delivery for affiliate and partner-marketing platforms.
//!
//! A request enters through [`http`] (axum) and [`graphql`] (async-graphql),
//! the rules live in [`domain`], and everything is stored through the SeaORM
//! entities of the `entity` crate. [`run`] is what `hookline serve` calls and
//! what the integration tests start on port 0.

pub mod auth;
pub mod bus;
pub mod config;
pub mod crypto;
pub mod db;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod ids;
pub mod keys;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod state;
pub mod telemetry;
pub mod time;

use std::{future::Future, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;

pub use config::Config;

use crate::{bus::DeliveryChange, keys::Keys, state::AppState};

/// Runs the service on `listener` until `shutdown` completes: [`prepare`],
/// then [`Prepared::serve`]: starts the delivery worker (unless `no_worker`),
/// serves the API, and on shutdown drains HTTP requests, then the worker.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    prepare(config).await?.serve(listener, shutdown).await
}

/// Everything a start can fail on, done before the server says it listens:
/// the configuration (keys included) is checked, the database answers (one plain connection,
/// so the error is the real cause), its schema is migrated, and the keys are
/// loaded, or created beside a new SQLite file only once the database opened.
pub async fn prepare(config: Config) -> anyhow::Result<Prepared> {
    config.validate()?;
    Keys::check(&config.store)?;
    let url = &config.store.database_url;
    db::probe(url).await?;
    db::migrate(url).await?;
    let db = db::connect(url).await?;
    let keys = Keys::resolve(&config.store)?;
    Ok(Prepared { config, db, keys })
}

/// A server ready to accept requests (see [`prepare`]).
pub struct Prepared {
    config: Config,
    db: db::Db,
    keys: Keys,
}

impl Prepared {
    /// The keys in use: where they came from, and the secret tokens are signed with.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Serves HTTP on `listener` and runs the delivery worker until `shutdown`
    /// completes, then drains both.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Prepared { config, db, keys } = self;
        let public_url = config.public_url.clone().unwrap_or_else(|| {
            format!(
                "http://{}",
                listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            )
        });
        let (state, queues) = AppState::new(db, config, &keys);
        state.set_public_url(public_url);
        let state = Arc::new(state);
        let instance = ids::new_id(ids::IdKind::Instance);
        tokio::spawn(bus::loader::run(
            state.read.clone(),
            state.bus.clone(),
            queues.loader,
        ));
        let relay = queues.relay.map(|outgoing| {
            bus::relay::start(
                state.db.clone(),
                state.bus.clone(),
                outgoing,
                instance.clone(),
                state.shutdown.clone(),
            )
        });
        let engine = if state.config.no_worker {
            None
        } else {
            Some(
                delivery::DeliveryEngine::start(
                    state.db.clone(),
                    &state.config,
                    state.bus.clone(),
                    state.secrets.clone(),
                    instance,
                    on_commit(&state),
                )
                .await?,
            )
        };
        if let Some(engine) = &engine {
            state.events.set_local_worker(engine.local_worker());
        }
        tokio::spawn(housekeeping(state.clone()));
        let schema = graphql::build(state.clone());
        let app = http::router(state.clone(), schema);
        tracing::info!(
            address = %listener.local_addr()?,
            database = %db::redact_url(&state.config.store.database_url),
            worker = engine.is_some(),
            "hookline started"
        );
        // One signal stops both at once: HTTP drains its requests while the
        // worker stops claiming and lets its requests in flight finish.
        let stop = state.shutdown.clone();
        tokio::spawn({
            let stop = stop.clone();
            async move {
                shutdown.await;
                stop.cancel();
            }
        });
        let http =
            axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
        let worker = async {
            stop.cancelled().await;
            if let Some(engine) = engine {
                engine.shutdown().await;
            }
        };
        let (served, ()) = tokio::join!(async { http.await.context("serving HTTP") }, worker);
        // The relay hands its LISTEN connection back before the pool closes.
        for task in relay.into_iter().flatten() {
            task.await.ok();
        }
        // Readers first: SQLite folds its WAL into the file when the last
        // connection, which must be able to write, closes.
        state.read.clone().close().await.ok();
        state.db.clone().close().await.ok();
        tracing::info!("hookline stopped");
        served
    }
}

/// Periodic chores: purging history past the retention period, and
/// forgetting idle tenants' rate-limit buckets.
async fn housekeeping(state: Arc<AppState>) {
    let every = domain::retention::sweep_interval(state.config.retention);
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = state.shutdown.cancelled() => return,
        }
        match domain::retention::purge(&state.db, state.config.retention).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged events past the retention period"),
            Err(err) => tracing::warn!("purging old events failed: {err}"),
        }
        state.publish_limit.forget_idle();
    }
}

/// What happens once the recorder commits a batch: live subscribers hear of
/// the attempts and of changed deliveries, and retries due soon wake the
/// worker's scheduler.
fn on_commit(state: &Arc<AppState>) -> delivery::recorder::OnCommit {
    let bus = state.bus.clone();
    let metrics = state.metrics.clone();
    Arc::new(move |committed| {
        for record in &committed.attempts {
            let attempt = &record.live.attempt;
            let status = (!record.delivery_status.is_open())
                .then(|| sea_orm::ActiveEnum::to_value(&record.delivery_status));
            metrics.attempt(
                attempt.error_kind.as_deref(),
                attempt.duration_ms,
                status.as_deref(),
            );
        }
        for _ in &committed.cancelled {
            metrics.finished("CANCELLED");
        }
        if committed
            .attempts
            .iter()
            .any(|r| r.live.attempt.next_attempt_at.is_some())
        {
            bus.wake_worker();
        }
        if bus.wants_delivery_changes() {
            let cancelled = committed
                .cancelled
                .into_iter()
                .map(DeliveryChange::cancelled);
            let attempted = committed
                .attempts
                .iter()
                // Only a first attempt or a final one changes the status.
                .filter(|r| r.live.attempt.attempt_number == 1 || !r.delivery_status.is_open())
                .map(|r| DeliveryChange::after_attempt(&r.live.attempt, r.delivery_status));
            bus.announce_delivery_changes(cancelled.chain(attempted).collect());
        }
        bus.announce_attempts(committed.attempts.into_iter().map(|r| r.live).collect());
    })
}
