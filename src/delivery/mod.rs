//! Delivering events: the worker that claims due deliveries and makes the
//! signed requests, and the recorder that writes down what happened.
//!
//! The `worker` takes deliveries two ways: offered by a publish's commit
//! (`worker::Offers`, wrapping the facts port), and claimed from the queue
//! when due (`domain::queue` makes every claim; `details` reads what claimed
//! rows need). It runs them through per-endpoint lanes; `attempt` makes the
//! signed request with `client` (reqwest + SSRF guard) and `signer`, and
//! `outcome` decides what each result means using `backoff`; the `recorder`
//! writes attempts and settles deliveries in batches, then tells the port.

pub mod attempt;
pub mod backoff;
mod bookkeeping;
pub mod client;
pub mod details;
pub mod job;
pub mod outcome;
pub mod recorder;
pub mod signer;
pub mod worker;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    config::Config,
    crypto::SecretBox,
    domain::facts::{Facts, Wakeup},
    ids::InstanceId,
    metrics::Metrics,
};
use client::DeliveryClient;
use recorder::Recorder;
use worker::{Offers, Worker, WorkerSettings};

/// The header that numbers each attempt of a delivery (1 for the first), so
/// a receiver can tell a retry from a first try. Standard Webhooks defines
/// no such header; it is hookline's own, and not signed.
pub const ATTEMPT_HEADER: &str = "webhook-attempt";

/// The running worker and recorder.
pub struct DeliveryEngine {
    worker: Arc<Worker>,
    offers: Arc<Offers>,
    worker_task: JoinHandle<()>,
    offers_task: JoinHandle<()>,
    recorder_task: JoinHandle<()>,
}

impl DeliveryEngine {
    /// Starts the worker and the recorder. `facts` hears what they record;
    /// `wakeup` wakes the worker when deliveries may be due.
    pub async fn start(
        db: DatabaseConnection,
        config: &Config,
        facts: Arc<dyn Facts>,
        wakeup: Wakeup,
        secrets: SecretBox,
        metrics: Arc<Metrics>,
        instance: InstanceId,
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
            instance: instance.clone(),
        };
        let (tx, rx) = mpsc::channel(4 * config.worker_concurrency as usize);
        let recorder = Recorder::new(
            db.clone(),
            config.disable_after,
            facts.clone(),
            metrics,
            wakeup.clone(),
        );
        let recorder_task = tokio::spawn(recorder.run(rx));
        let worker = Worker::new(
            db.clone(),
            client,
            wakeup,
            facts.clone(),
            secrets,
            settings,
            tx,
        );
        let worker_task = tokio::spawn(worker.clone().run());
        let (offers, offered) = Offers::new(facts);
        let offers_task = tokio::spawn(worker::take_offers(worker.clone(), offered));
        tracing::info!(instance = %instance, "delivery worker started");
        Ok(Self {
            worker,
            offers: Arc::new(offers),
            worker_task,
            offers_task,
            recorder_task,
        })
    }

    /// The facts port for publishing on this instance: what it is told
    /// passes on to `facts` (given at start), and new deliveries are offered
    /// to this worker first.
    pub fn facts(&self) -> Arc<dyn Facts> {
        self.offers.clone()
    }

    /// Graceful stop: no new claims, in-flight requests get the grace period,
    /// everything not attempted is handed back, and every result is written.
    pub async fn shutdown(self) {
        self.worker.shutdown().await;
        let _ = self.worker_task.await;
        let _ = self.offers_task.await;
        // The last sender goes with the worker; the recorder then drains.
        drop(self.worker);
        let _ = self.recorder_task.await;
    }
}
