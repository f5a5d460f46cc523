//! Publishing as fast as the server takes it: a few loops, each making one
//! request at a time, together publishing a fixed number of events.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::task::JoinSet;

use crate::{api::Api, receiver::EventKey, stats::Latencies};

#[derive(Clone, Copy, Debug)]
pub enum Publish {
    /// `publishEvent`, one event per request.
    One,
    /// `publishEvents` with this many events per request.
    Batch(u64),
}

pub struct Published {
    pub events: Vec<EventKey>,
    /// When the request that made each event (same index) was sent.
    pub sent: Vec<Instant>,
    pub started: Instant,
    pub elapsed: Duration,
    /// Time per request.
    pub requests: Latencies,
}

impl Published {
    pub fn rate(&self) -> f64 {
        self.events.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Publishes `count` events from `tasks` concurrent loops, each making one
/// request at a time to one of `apis` (loop n to `apis[n % len]`); every
/// event must make `per_event` deliveries.
pub async fn publish(
    apis: &[Api],
    count: u64,
    tasks: usize,
    how: Publish,
    per_event: u32,
) -> anyhow::Result<Published> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for task in 0..tasks {
        let api = apis[task % apis.len()].clone();
        let next = next.clone();
        set.spawn(async move {
            let (mut events, mut sent_at) = (Vec::new(), Vec::new());
            let mut requests = Latencies::precise();
            let step = match how {
                Publish::One => 1,
                Publish::Batch(n) => n,
            };
            loop {
                let first = next.fetch_add(step, Ordering::Relaxed);
                if first >= count {
                    return anyhow::Ok((events, sent_at, requests));
                }
                let n = step.min(count - first);
                let sent = Instant::now();
                let published = match how {
                    Publish::One => vec![api.publish_one(first).await?],
                    Publish::Batch(_) => api.publish_batch(first, n).await?,
                };
                requests.record(sent.elapsed());
                for (event, deliveries) in published {
                    if deliveries != per_event {
                        bail!("an event made {deliveries} deliveries, expected {per_event}");
                    }
                    events.push(event);
                    sent_at.push(sent);
                }
            }
        });
    }
    let mut events = Vec::with_capacity(count as usize);
    let mut sent = Vec::with_capacity(count as usize);
    let mut requests = Latencies::precise();
    while let Some(joined) = set.join_next().await {
        let (mine, mine_sent, latencies) = joined.context("a publishing task panicked")??;
        events.extend(mine);
        sent.extend(mine_sent);
        requests.add(&latencies);
    }
    Ok(Published {
        events,
        sent,
        started,
        elapsed: started.elapsed(),
        requests,
    })
}
