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
pub mod kept;
pub mod keys;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod reconnect;
pub mod state;
pub mod telemetry;
pub mod time;

use std::{future::Future, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use config::Config;

use crate::{
    bus::Bus,
    crypto::SecretBox,
    domain::{
        facts::Wakeup,
        instances::{Heartbeat, Peers},
    },
    keys::Keys,
    metrics::Metrics,
    state::{AppState, Wiring},
};

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
    let mut db = db::connect(url).await?;
    if let Some(read_url) = &config.store.database_read_url {
        db = db.with_replica(read_url, config.store.database_read_max_lag)?;
    }
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
        let address = listener.local_addr()?;
        let Prepared { config, db, keys } = self;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        let writer = db.write.clone();
        let reader = db.read.clone();
        let started = Started::start(db, config, &keys).await?;
        let Started {
            state,
            engine,
            heartbeat,
            tasks,
        } = started;
        state.set_public_url(public_url);
        let app = http::router(state.clone(), graphql::build(state.clone()));
        tracing::info!(
            address = %address,
            database = %db::redact_url(&state.config.store.database_url),
            worker = engine.is_some(),
            "hookline started"
        );
        // One signal stops everything at once: HTTP drains its requests while
        // the worker stops claiming and lets its requests in flight finish.
        let stop = state.shutdown.clone();
        tasks.spawn({
            let stop = stop.clone();
            async move {
                tokio::select! {
                    () = shutdown => stop.cancel(),
                    () = stop.cancelled() => {}
                }
            }
        });
        let http =
            axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
        let worker = async {
            stop.cancelled().await;
            if let Some(engine) = engine {
                engine.shutdown().await;
            }
            // Only once its claims are settled or handed back.
            heartbeat.stop().await;
        };
        let (served, ()) = tokio::join!(async { http.await.context("serving HTTP") }, worker);
        // The last handle on the services: dropping it ends the group
        // commits, whose tasks the tracker then waits for with the others
        // (the relay hands its LISTEN connection back before the pool closes).
        drop(state);
        tasks.close();
        tasks.wait().await;
        // Readers first: SQLite folds its WAL into the file when the last
        // connection, which must be able to write, closes.
        reader.close().await.ok();
        writer.close().await.ok();
        tracing::info!("hookline stopped");
        served
    }
}

/// The services, their background tasks, and the delivery engine, wired:
/// the bus implements domain's facts and live ports; the engine, when this
/// instance has one, implements the intake port.
struct Started {
    state: Arc<AppState>,
    engine: Option<delivery::DeliveryEngine>,
    heartbeat: Heartbeat,
    /// Every background task but the engine's: stopped by
    /// `state.shutdown`, waited for before the pools close.
    tasks: TaskTracker,
}

impl Started {
    async fn start(db: db::Db, config: Config, keys: &Keys) -> anyhow::Result<Self> {
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let instance = ids::InstanceId::new();
        let wakeup = Wakeup::default();
        let relayed = db.write.get_database_backend() == sea_orm::DbBackend::Postgres;
        let peers = Peers::default();
        let heartbeat = Heartbeat::start(
            db.write.clone(),
            instance.clone(),
            config.instance_timeout,
            peers.clone(),
        )
        .await?;
        let (bus, queues) = Bus::new(
            config.subscriber_buffer as usize,
            relayed,
            wakeup.clone(),
            peers,
        );
        let bus = Arc::new(bus);
        tasks.spawn(until(
            stop.clone(),
            bus::loader::run(db.read.clone(), bus.clone(), queues.loader),
        ));
        if let Some(outgoing) = queues.relay {
            bus::relay::start(
                &tasks,
                &stop,
                db.write.clone(),
                bus.clone(),
                outgoing,
                instance.clone(),
            );
        }
        let metrics = Arc::new(Metrics::new());
        let secrets = SecretBox::new(&keys.encryption_key);
        let engine = if config.no_worker {
            None
        } else {
            Some(
                delivery::DeliveryEngine::start(
                    db.write.clone(),
                    &config,
                    bus.clone(),
                    wakeup,
                    secrets.clone(),
                    metrics.clone(),
                    instance.clone(),
                )
                .await?,
            )
        };
        // What domain commits is counted, then told to the bus; new
        // deliveries go straight to this instance's worker, when it has one.
        let facts = Arc::new(metrics::Counting {
            metrics: metrics.clone(),
            inner: bus.clone(),
        });
        let wiring = Wiring {
            facts,
            instance: instance.clone(),
            intake: engine.as_ref().map(delivery::DeliveryEngine::intake),
            live: bus,
            metrics,
            secrets,
            tasks: tasks.clone(),
            shutdown: stop,
        };
        let state = Arc::new(AppState::new(db, config, keys, wiring));
        tasks.spawn(housekeeping(state.clone()));
        Ok(Self {
            state,
            engine,
            heartbeat,
            tasks,
        })
    }
}

/// `task`, ended early when `stop` is cancelled.
async fn until(stop: CancellationToken, task: impl Future<Output = ()>) {
    tokio::select! {
        () = task => {}
        () = stop.cancelled() => {}
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
        if state.db.get_database_backend() == sea_orm::DbBackend::Postgres
            && let Err(err) = domain::retention::make_ahead(&state.db, time::now_ms()).await
        {
            tracing::warn!("making the next weeks' history partitions failed: {err}");
        }
        match domain::retention::purge(&state.db, state.config.retention).await {
            Ok(purged) if purged == domain::retention::Purged::default() => {}
            Ok(purged) => tracing::info!(
                weeks = purged.weeks,
                events = purged.events,
                "purged history past the retention period"
            ),
            Err(err) => tracing::warn!("purging old events failed: {err}"),
        }
        state.publish_limit.forget_idle();
    }
}
