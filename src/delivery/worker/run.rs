//! One endpoint's lane at work: a task makes its jobs' requests one after
//! another, and hands each result to the recorder.

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use tracing::Instrument;

use super::{InFlight, Job, Lane, Slot, Worker, window::Answer};
use crate::{
    delivery::{
        attempt::{attempt, attempt_span},
        recorder::Record,
        refresh,
    },
    ids::EndpointId,
    telemetry,
};

impl Worker {
    /// Runs jobs for one endpoint, one after another, until its queue is
    /// empty, or the endpoint's window or its tenant's share has no room.
    pub(super) async fn run_lane(self: Arc<Self>, first: Job) {
        let endpoint_id = first.endpoint.id.clone();
        let mut job = first;
        loop {
            let cap = self.lane_concurrency(&job.endpoint);
            let tenant = job.tenant_id.clone();
            let (record, slot) = self.process(job).await;
            let answer = Answer::of(&record);
            self.record(record).await;
            let (next, more, wake) = self.lane_done(&endpoint_id, &tenant, answer, cap, slot);
            if wake {
                self.capacity_freed.notify_one();
            }
            for more in more {
                self.start_lane(more);
            }
            match next {
                Some(next) => job = next,
                None => break,
            }
        }
    }

    /// Attempts `job`, and says where its request was counted when it
    /// ended.
    async fn process(&self, job: Job) -> (Record, Slot) {
        // The lease started at the claim: a job that waited in its lane too
        // long could still be running when another instance takes it over.
        let budget = self
            .settings
            .lease
            .saturating_sub(job.webhook.timeout + Duration::from_secs(5));
        // A throttled endpoint's request waits for its slot, within the
        // same budget.
        let in_time = if job.claimed_at.elapsed() > budget {
            false
        } else if job.endpoint.rate_limit.is_some() {
            self.wait_turn(&job, budget).await
        } else {
            true
        };
        if !in_time {
            let release = Record::Release {
                delivery_id: job.delivery_id,
                claim_token: job.claim_token,
            };
            return (release, Slot::Held);
        }
        let job = match refresh::current(&self.db, job, &self.targets, &self.secrets).await {
            Ok(job) => job,
            Err(record) => return (record, Slot::Held),
        };
        let request = self.requests.fetch_add(1, Ordering::Relaxed);
        let bytes = job.body.len();
        self.with_lane(&job.endpoint.id, |lane| {
            lane.in_flight.push(InFlight {
                request,
                started: Instant::now(),
                bytes,
                lingering: false,
            })
        });
        // A span per attempt only when traces are exported: it costs a
        // registry entry and its formatted fields, and a log line needs it
        // only when something is logged (see `log_attempt`).
        let span = if telemetry::exporting() {
            attempt_span(&job)
        } else {
            tracing::Span::none()
        };
        telemetry::continue_trace(&span, job.trace_context.as_deref());
        let record = tokio::select! {
            record = attempt(&self.client, &job, self.settings.retry_after_cap, &self.instance)
                .instrument(span) => Record::Attempt(Box::new(record)),
            () = self.abort.cancelled() => Record::Release {
                delivery_id: job.delivery_id.clone(),
                claim_token: job.claim_token,
            },
        };
        let lingered = self.with_lane(&job.endpoint.id, |lane| {
            let at = lane.in_flight.iter().position(|r| r.request == request)?;
            Some(lane.in_flight.swap_remove(at).lingering)
        });
        let slot = match lingered {
            Some(Some(true)) => Slot::Lingering { bytes },
            _ => Slot::Held,
        };
        (record, slot)
    }

    fn with_lane<R>(&self, endpoint_id: &EndpointId, f: impl FnOnce(&mut Lane) -> R) -> Option<R> {
        self.lanes().endpoints.get_mut(endpoint_id).map(f)
    }
}
