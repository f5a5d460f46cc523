//! A job's webhook and endpoint read again before a request that starts
//! late.
//!
//! A job carries its webhook (secrets decrypted) and endpoint as they were
//! read when it was claimed, or handed over at its publish's commit. Most
//! jobs start within milliseconds of that read. One that waits longer (its
//! endpoint's lane is busy, its endpoint is throttled) reads both again
//! first, so a change acknowledged while it waited is in force for its
//! request, whichever instance made it: a rotated secret signs it, the old
//! one no longer does once its grace period is over; a deleted webhook, a
//! paused one, or a disabled endpoint sends nothing.

use std::time::{Duration, Instant};

use entity::{
    endpoint::{self, EndpointStatus},
    webhook::{self, WebhookStatus},
};
use sea_orm::{DatabaseConnection, EntityTrait};

use super::{
    job::{Job, TargetCache},
    recorder::Record,
};
use crate::{crypto::SecretBox, time::now_ms};

/// How long a job's webhook and endpoint are taken as read: a request that
/// starts later reads them again. A change therefore reaches every request
/// that starts more than this long after its acknowledgement.
pub const READ_FOR: Duration = Duration::from_millis(200);

/// `job` as it may be sent now, or what to record instead: when its webhook
/// and endpoint were read longer than [`READ_FOR`] ago, they are read again
/// (both at once). A webhook paused or an endpoint disabled since cancels
/// it; one deleted since, a secret that cannot be read, or a database that
/// cannot be reached hands it back to the queue (a claim deletes what is
/// gone and retries the rest).
pub async fn current(
    db: &DatabaseConnection,
    mut job: Job,
    targets: &TargetCache,
    secrets: &SecretBox,
) -> Result<Job, Record> {
    if job.read_at.elapsed() <= READ_FOR {
        return Ok(job);
    }
    // Another job of the same webhook and endpoint read them just now.
    if let Some((read_at, (webhook, endpoint))) =
        targets.reread_within(&job.webhook.id, &job.endpoint.id, READ_FOR)
    {
        (job.webhook, job.endpoint, job.read_at) = (webhook, endpoint, read_at);
        return Ok(job);
    }
    let read_at = Instant::now();
    // The webhook first, then its endpoint, as claims read them: the
    // endpoint is then as new as the webhook or newer. Read at once, on two
    // connections, an endpoint from before a change could be paired with
    // the changed webhook and kept as its endpoint (`TargetCache` keys
    // endpoints by their webhook's `updated_at`) until the next change.
    let read = async {
        let webhook = webhook::Entity::find_by_id(job.webhook.id.clone())
            .one(db)
            .await?;
        let endpoint = endpoint::Entity::find_by_id(job.endpoint.id.clone())
            .one(db)
            .await?;
        Ok::<_, sea_orm::DbErr>((webhook, endpoint))
    }
    .await;
    let (webhook, endpoint) = match read {
        Ok((Some(webhook), Some(endpoint))) => (webhook, endpoint),
        Ok(_) => return Err(release(job)),
        Err(err) => {
            tracing::warn!(delivery_id = %job.delivery_id, "cannot read the delivery's webhook again; handing it back: {err}");
            return Err(release(job));
        }
    };
    if webhook.status != WebhookStatus::Active || endpoint.status != EndpointStatus::Active {
        return Err(Record::Cancel {
            sequence: job.sequence(),
            delivery_id: job.delivery_id,
            claim_token: job.claim_token,
        });
    }
    match targets.targets(&webhook, &endpoint, secrets, now_ms()) {
        Ok(current) => {
            targets.reread_at(read_at, &current, READ_FOR);
            (job.webhook, job.endpoint) = current;
            job.read_at = read_at;
            Ok(job)
        }
        Err(err) => {
            tracing::error!(webhook_id = %webhook.id, "cannot read the webhook's signing secret: {err:#}");
            Err(release(job))
        }
    }
}

/// Hands `job` back to the queue, due now.
fn release(job: Job) -> Record {
    Record::Release {
        delivery_id: job.delivery_id,
        claim_token: job.claim_token,
    }
}
