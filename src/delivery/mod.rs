//! Delivering events: the worker that claims due deliveries and makes the
//! signed requests, and the recorder that writes down what happened.
//!
//! The `worker` takes deliveries two ways: at a publish's commit, through
//! the intake port (`worker::WorkerIntake`, see `domain::intake`), and
//! claimed from the queue when due (`domain::queue` makes every claim; `details` reads what claimed
//! rows need). It runs them through per-endpoint lanes (a job that starts
//! late reads its webhook and endpoint again: `refresh`); `attempt` makes the
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
mod refresh;
pub mod signer;
pub mod worker;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    config::Config,
    crypto::SecretBox,
    domain::{
        facts::{Facts, Wakeup},
        intake::Intake,
    },
    ids::InstanceId,
    metrics::Metrics,
};
use client::DeliveryClient;
use recorder::Recorder;
use worker::{Worker, WorkerIntake, WorkerSettings};

/// The header that numbers each attempt of a delivery (1 for the first), so
/// a receiver can tell a retry from a first try. Standard Webhooks defines
/// no such header; it is hookline's own, and not signed.
pub const ATTEMPT_HEADER: &str = "webhook-attempt";

/// The running worker and recorder.
pub struct DeliveryEngine {
    worker: Arc<Worker>,
    intake: Arc<WorkerIntake>,
    worker_task: JoinHandle<()>,
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
            tenant_concurrency: config.tenant_concurrency() as usize,
            lease: config.lease,
            poll_interval: config.poll_interval,
            retry_after_cap: config.retry_after_cap,
            shutdown_grace: config.shutdown_grace,
            instance: instance.clone(),
        };
        let (tx, rx) = mpsc::channel(4 * config.worker_concurrency as usize);
        let rules = bookkeeping::HealthRules {
            disable_after: config.disable_after,
            failing_after: config.failing_after,
        };
        let lingering = metrics.worker_lingering();
        let recorder = Recorder::new(db.clone(), rules, facts.clone(), metrics, wakeup.clone());
        let recorder_task = tokio::spawn(recorder.run(rx));
        let worker = Worker::new(db.clone(), client, wakeup, secrets, settings, tx, lingering);
        let worker_task = tokio::spawn(worker.clone().run());
        tracing::info!(instance = %instance, "delivery worker started");
        Ok(Self {
            intake: Arc::new(WorkerIntake::new(&worker)),
            worker,
            worker_task,
            recorder_task,
        })
    }

    /// Where publishing on this instance hands this worker new deliveries
    /// at their commit.
    pub fn intake(&self) -> Arc<dyn Intake> {
        self.intake.clone()
    }

    /// Graceful stop: no new claims, in-flight requests get the grace period,
    /// everything not attempted is handed back, and every result is written.
    pub async fn shutdown(self) {
        self.worker.shutdown().await;
        let _ = self.worker_task.await;
        // The last sender goes with the worker; the recorder then drains.
        drop(self.worker);
        let _ = self.recorder_task.await;
    }
}
