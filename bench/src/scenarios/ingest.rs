//! Scenario 1, `ingest`: how fast events are committed, one per request at
//! a fixed concurrency, then 100 per `publishEvents` call, while the worker
//! delivers them to one endpoint.

use super::{BATCH, Ctx, Env, Publish, Published, Sizes, publish};
use crate::{
    Scenario,
    cost::CostMeter,
    receiver::EventKey,
    report::{Cell, Section, Table},
    stats::Integrity,
};

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new("ingest", ctx.params(Scenario::Ingest));
    let mut env = Env::start(ctx, "ingest").await?;
    let healthy = env.healthy_webhooks(1).await?;
    let (meter, single, batched) = publish_both_ways(&env, ctx).await?;
    section
        .tables
        .push(rate_table(&ctx.sizes, &single, &batched));
    // Every event must still be delivered once.
    let events: Vec<_> = single
        .events
        .iter()
        .chain(&batched.events)
        .copied()
        .collect();
    check_delivered(&mut env, ctx, meter, &events, &healthy, &mut section).await?;
    env.stop(&mut section, "ingest").await;
    Ok(section)
}

/// Publishes one event per request, then 100 per call; the meter started
/// just before, for what committing and delivering both cost.
async fn publish_both_ways(
    env: &Env,
    ctx: &Ctx,
) -> anyhow::Result<(CostMeter, Published, Published)> {
    let sizes = &ctx.sizes;
    eprintln!("[bench]   publishEvent x {}", sizes.ingest_events);
    let meter = env.meter(ctx).await;
    let single = publish(
        &env.apis,
        sizes.ingest_events,
        sizes.ingest_concurrency,
        Publish::One,
        1,
    )
    .await?;
    eprintln!("[bench]   publishEvents x {}", sizes.ingest_batch_events);
    let batched = publish(
        &env.apis,
        sizes.ingest_batch_events,
        sizes.publishers,
        Publish::Batch(BATCH),
        1,
    )
    .await?;
    Ok((meter, single, batched))
}

fn rate_table(sizes: &Sizes, single: &Published, batched: &Published) -> Table {
    let mut table = Table::new(
        "events committed per second (request latency: one publishEvent / publishEvents call)",
        vec![
            "mode",
            "events",
            "concurrency",
            "elapsed s",
            "events/s",
            "req p50 ms",
            "req p99 ms",
            "req max ms",
        ],
    );
    let row = |mode: &str, concurrency: usize, run: &Published| {
        let latency = run.requests.summary();
        vec![
            Cell::Text(mode.into()),
            Cell::Int(run.events.len() as u64),
            Cell::Int(concurrency as u64),
            Cell::Num(run.elapsed.as_secs_f64(), 2),
            Cell::Num(run.rate(), 0),
            Cell::Num(latency.p50_ms, 1),
            Cell::Num(latency.p99_ms, 1),
            Cell::Num(latency.max_ms, 1),
        ]
    };
    table.row(row("publishEvent", sizes.ingest_concurrency, single));
    table.row(row(
        &format!("publishEvents x{BATCH}"),
        sizes.publishers,
        batched,
    ));
    table
}

/// Waits for every event to arrive once and `deliveryStats` to agree, then
/// records the cost since `meter` and what arrived.
async fn check_delivered(
    env: &mut Env,
    ctx: &Ctx,
    meter: CostMeter,
    events: &[EventKey],
    healthy: &[u32],
    section: &mut Section,
) -> anyhow::Result<()> {
    let expected = events.len() as u64;
    let complete = env.wait_arrivals(expected, ctx.stall).await?;
    let delivered = env.receiver.count().min(expected);
    let cost = env
        .cost(ctx, meter, "both modes", expected, delivered)
        .await;
    section.costs.push(cost);
    let (stats, stats_ok) = env
        .wait_stats(ctx.stall, |s| {
            s.succeeded == expected && s.attempts == expected
        })
        .await?;
    tokio::time::sleep(ctx.settle()).await;
    let arrivals = env.receiver.take();
    let integrity = Integrity::check(events, healthy, &arrivals);
    section.note(format!(
        "all {expected} events then delivered: {} arrived, {} lost, {} duplicated; \
         deliveryStats succeeded {} attempts {}{}",
        integrity.delivered,
        integrity.lost,
        integrity.duplicates,
        stats.succeeded,
        stats.attempts,
        match (complete, stats_ok) {
            (true, true) => "",
            (false, _) => " (gave up waiting for arrivals: no progress)",
            (true, false) => " (deliveryStats never agreed)",
        }
    ));
    section.integrity.push(("deliveries".into(), integrity));
    Ok(())
}
