//! Delivering events: the worker that claims due deliveries and makes the
//! signed requests, and the recorder that writes down what happened.
//!
//! `queue` claims rows, `worker` runs them through per-endpoint lanes using
//! `client` (reqwest + SSRF guard) and `signer`, `outcome` decides what each
//! result means using `backoff`, and `recorder` persists attempts in batches.

pub mod backoff;
pub mod client;
pub mod instances;
pub mod job;
pub mod outcome;
pub mod queue;
pub mod recorder;
pub mod signer;
pub mod worker;

use std::{sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{bus::Bus, config::Config, crypto::SecretBox};
use client::DeliveryClient;
use recorder::{OnCommit, Recorder};
use worker::{Worker, WorkerSettings};

/// The header that numbers each attempt of a delivery (1 for the first), so
/// a receiver can tell a retry from a first try. Standard Webhooks defines
/// no such header; it is hookline's own, and not signed.
pub const ATTEMPT_HEADER: &str = "webhook-attempt";

/// The running worker and recorder.
pub struct DeliveryEngine {
    worker: Arc<Worker>,
    worker_task: JoinHandle<()>,
    recorder_task: JoinHandle<()>,
    heartbeat_task: JoinHandle<()>,
    stop_heartbeat: CancellationToken,
    db: DatabaseConnection,
    instance: String,
}

impl DeliveryEngine {
    pub async fn start(
        db: DatabaseConnection,
        config: &Config,
        bus: Arc<Bus>,
        secrets: SecretBox,
        instance: String,
        on_commit: OnCommit,
    ) -> anyhow::Result<Self> {
        // Idle connections are kept per host: several endpoints on one host
        // share them, so allow as many as may be in flight overall.
        let client = DeliveryClient::new(
            config.allow_private_endpoints,
            config.worker_concurrency as usize,
        )?;
        let settings = WorkerSettings {
            concurrency: config.worker_concurrency as usize,
            endpoint_concurrency: config.endpoint_concurrency as usize,
            lease: config.lease,
            poll_interval: config.poll_interval,
            retry_after_cap: config.retry_after_cap,
            shutdown_grace: config.shutdown_grace,
        };
        instances::register(&db, &instance).await?;
        let stop_heartbeat = CancellationToken::new();
        let heartbeat_task = tokio::spawn(heartbeat(
            db.clone(),
            instance.clone(),
            config.instance_timeout,
            stop_heartbeat.clone(),
        ));
        let (tx, rx) = mpsc::channel(4 * config.worker_concurrency as usize);
        let recorder = Recorder::new(db.clone(), config.disable_after, on_commit);
        let recorder_task = tokio::spawn(recorder.run(rx));
        let worker = Worker::new(
            db.clone(),
            client,
            bus,
            secrets,
            settings,
            instance.clone(),
            tx,
        );
        let worker_task = tokio::spawn(worker.clone().run());
        tracing::info!(instance = %instance, "delivery worker started");
        Ok(Self {
            worker,
            worker_task,
            recorder_task,
            heartbeat_task,
            stop_heartbeat,
            db,
            instance,
        })
    }

    /// What publishing hands its deliveries to.
    pub fn local_worker(&self) -> Arc<worker::LocalHandle> {
        Arc::new(worker::LocalHandle(Arc::downgrade(&self.worker)))
    }

    /// Graceful stop: no new claims, in-flight requests get the grace period,
    /// everything not attempted is handed back, and every result is written.
    pub async fn shutdown(self) {
        self.worker.shutdown().await;
        let _ = self.worker_task.await;
        // The last sender goes with the worker; the recorder then drains.
        drop(self.worker);
        let _ = self.recorder_task.await;
        self.stop_heartbeat.cancel();
        let _ = self.heartbeat_task.await;
        if let Err(err) = instances::deregister(&self.db, &self.instance).await {
            tracing::warn!("could not deregister instance {}: {err}", self.instance);
        }
    }
}

/// Beats at a fifth of the timeout and reaps silent instances, until stopped.
async fn heartbeat(
    db: DatabaseConnection,
    instance: String,
    timeout: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(timeout / 5);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Err(err) = instances::beat(&db, &instance).await {
            tracing::warn!("heartbeat failed: {err}");
            continue;
        }
        if let Err(err) = instances::reap(&db, &instance, timeout).await {
            tracing::warn!("reaping silent instances failed: {err}");
        }
    }
}
