//! Scenario 6, `memory`: the server's resident memory idle after start, at its
//! peak during a throughput run (E=1), and with a large backlog queued behind
//! an endpoint that refuses connections. Then, on a fresh server, the memory
//! attacks of one viewer ([`super::memory_attacks`]).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use super::{
    Ctx, Env, Publish, Published, publish,
    throughput::{self, Load},
};
use crate::{
    Scenario,
    api::{DeliveryStats, WebhookSpec},
    report::{Cell, Section, Table},
};

/// Samples the server's VmRSS every 100 ms and keeps the largest.
pub(super) struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    pub(super) fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            async move {
                let path = format!("/proc/{pid}/status");
                let mut ticker = tokio::time::interval(Duration::from_millis(100));
                while !stop.load(Ordering::Relaxed) {
                    ticker.tick().await;
                    if let Some(kib) = std::fs::read_to_string(&path).ok().and_then(|s| vm_rss(&s))
                    {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                }
            }
        });
        Self { stop, peak, task }
    }

    /// Stops sampling; the peak in KiB.
    pub(super) async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(super) fn mib(kib: u64) -> Cell {
    Cell::Num(kib as f64 / 1024.0, 1)
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new("memory", ctx.params(Scenario::Memory));
    let mut table = Table::new(
        "server memory (MiB): VmRSS now, sampled peak in the phase, kernel high-water mark",
        vec!["phase", "rss", "sampled peak", "VmHWM"],
    );
    let mut env = Env::start(ctx, "memory").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle, hwm) = env.server.memory_kib()?;
    table.row(vec![
        Cell::Text("idle after start".into()),
        mib(idle),
        mib(idle),
        mib(hwm),
    ]);
    throughput_phase(&mut env, ctx, &mut section, &mut table).await?;
    pause_all_webhooks(&env).await?;
    add_dead_webhook(&env).await?;
    let backlog = queue_backlog(&mut env, ctx, &mut table).await?;
    section.tables.push(table);
    section.note(backlog.describe());
    env.stop(&mut section, "memory").await;
    super::memory_attacks::run(ctx, &mut section).await?;
    Ok(section)
}

/// A throughput run, E=1, with the server's memory sampled throughout.
async fn throughput_phase(
    env: &mut Env,
    ctx: &Ctx,
    section: &mut Section,
    table: &mut Table,
) -> anyhow::Result<()> {
    let events = ctx.sizes.events;
    let healthy = env.healthy_webhooks(1).await?;
    let sampler = RssSampler::start(env.server.pid);
    let load = Load::batched(ctx, events, healthy, 1);
    let case = "throughput E=1";
    let measured = throughput::measure(env, ctx, &load, case).await?;
    let peak = sampler.finish().await;
    let (now, hwm) = env.server.memory_kib()?;
    table.row(vec![
        Cell::Text(format!("throughput E=1, {events} events")),
        mib(now),
        mib(peak.max(now)),
        mib(hwm),
    ]);
    throughput::stats_note(section, "throughput", &measured, true);
    section.note(format!(
        "throughput phase: {:.0} deliveries/s, {} lost, {} duplicated",
        measured.rate(),
        measured.integrity.lost,
        measured.integrity.duplicates
    ));
    section
        .integrity
        .push(("throughput".into(), measured.integrity));
    section.costs.push(measured.cost);
    Ok(())
}

/// Pauses the webhooks made so far: events published from now on make
/// deliveries to the dead endpoint only.
async fn pause_all_webhooks(env: &Env) -> anyhow::Result<()> {
    let webhooks = env.api.request::<serde_json::Value>(
        "{ webhooks(first: 10) { nodes { id } } }",
        serde_json::Value::Null,
    );
    let webhooks = webhooks.await?;
    for node in webhooks["webhooks"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(id) = node["id"].as_str() {
            env.api.set_webhook_status(id, "PAUSED").await?;
        }
    }
    Ok(())
}

/// A webhook to a port on 127.0.0.1 nobody listens on, retried only after
/// an hour: each delivery fails once, then waits in the queue.
async fn add_dead_webhook(env: &Env) -> anyhow::Result<()> {
    let dead_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let spec = WebhookSpec {
        name: "bench dead endpoint".into(),
        urls: vec![format!("http://127.0.0.1:{dead_port}/dead")],
        max_attempts: 5,
        initial_interval_ms: 3_600_000,
        max_interval_ms: 3_600_000,
        timeout_ms: 10_000,
        ordering: None,
        extra: None,
    };
    env.api.create_webhook(&spec).await?;
    Ok(())
}

/// The backlog behind the dead endpoint: how it was published, and the
/// queue when publishing ended and once the first attempts were made.
struct Backlog {
    queued: Published,
    when_published: DeliveryStats,
    stats: DeliveryStats,
    /// Every first attempt was made before progress stalled.
    settled: bool,
}

/// Publishes `--queued` events to the dead endpoint and waits for their
/// first attempts; a memory row after each.
async fn queue_backlog(env: &mut Env, ctx: &Ctx, table: &mut Table) -> anyhow::Result<Backlog> {
    let sizes = &ctx.sizes;
    let before = env.api.delivery_stats().await?;
    let sampler = RssSampler::start(env.server.pid);
    eprintln!(
        "[bench]   queueing {} deliveries behind a dead endpoint",
        sizes.queued
    );
    let queued = publish(
        &env.apis,
        sizes.queued,
        sizes.publishers,
        Publish::Batch(1_000),
        1,
    )
    .await?;
    let (after_publish, hwm) = env.server.memory_kib()?;
    let when_published = env.api.delivery_stats().await?;
    table.row(vec![
        Cell::Text(format!("{} queued, publishing done", sizes.queued)),
        mib(after_publish),
        mib(sampler.peak.load(Ordering::Relaxed).max(after_publish)),
        mib(hwm),
    ]);
    // Every queued delivery gets its first (failed) attempt, then waits an hour.
    let target = before.attempts + sizes.queued;
    let (stats, settled) = env
        .wait_stats(ctx.stall, |s| s.attempts >= target && s.pending == 0)
        .await?;
    let peak = sampler.finish().await;
    let (after_attempts, hwm) = env.server.memory_kib()?;
    table.row(vec![
        Cell::Text(format!("{} queued, first attempts made", sizes.queued)),
        mib(after_attempts),
        mib(peak.max(after_attempts)),
        mib(hwm),
    ]);
    Ok(Backlog {
        queued,
        when_published,
        stats,
        settled,
    })
}

impl Backlog {
    fn describe(&self) -> String {
        format!(
            "backlog: published {} events in {:.1} s ({:.0}/s, 1000 per call); when publishing ended: \
             {} pending, {} retrying; {}: {} pending, {} retrying, {} attempts",
            self.queued.events.len(),
            self.queued.elapsed.as_secs_f64(),
            self.queued.rate(),
            self.when_published.pending,
            self.when_published.retrying,
            if self.settled {
                "after the first attempts"
            } else {
                "when progress stalled"
            },
            self.stats.pending,
            self.stats.retrying,
            self.stats.attempts
        )
    }
}
