//! Scenario 2, `throughput`: N events to E endpoints as fast as they go, from
//! the first publish to the last arrival; then `deliveryStats` must show every
//! delivery SUCCEEDED and every attempt recorded.

use std::time::{Duration, Instant};

use super::{BATCH, Ctx, Env, Publish, Published, publish};
use crate::{
    api::DeliveryStats,
    cost::Cost,
    report::{Cell, Section, Table},
    stats::{Integrity, Latencies},
};

/// What to publish and what must arrive.
pub struct Load {
    pub events: u64,
    /// Healthy endpoints every event must reach.
    pub healthy: Vec<u32>,
    /// Deliveries each event makes (healthy and otherwise).
    pub per_event: u32,
    /// `deliveryStats` must show exactly events × healthy SUCCEEDED and as
    /// many attempts; otherwise only at least that many SUCCEEDED.
    pub exact_stats: bool,
    /// Publish with no worker running, then start one: measures draining
    /// a backlog, from the first arrival to the last.
    pub backlog: bool,
    /// How events are published, and by how many loops at once.
    pub how: Publish,
    pub tasks: usize,
}

impl Load {
    /// `events` published 100 per call by `--publishers` loops.
    pub fn batched(ctx: &Ctx, events: u64, healthy: Vec<u32>, per_event: u32) -> Self {
        Self {
            events,
            healthy,
            per_event,
            exact_stats: true,
            backlog: false,
            how: Publish::Batch(BATCH),
            tasks: ctx.sizes.publishers,
        }
    }
}

pub struct Measured {
    pub deliveries: u64,
    pub publish: Published,
    /// First publish (backlog: first arrival) to last expected arrival.
    pub elapsed: Duration,
    pub stats: DeliveryStats,
    /// `deliveryStats` agreed before progress stalled.
    pub stats_ok: bool,
    /// From the last arrival until `deliveryStats` agreed.
    pub stats_lag: Duration,
    pub integrity: Integrity,
    /// TCP connections the receiver accepted during the run.
    pub connections: u64,
    /// How long one `deliveryStats` query took at the end.
    pub stats_query: Duration,
    /// Request sent → arrival, per delivery.
    pub end_to_end: Latencies,
    /// From before the first publish until the last expected arrival.
    pub cost: Cost,
}

impl Measured {
    pub fn rate(&self) -> f64 {
        self.integrity.delivered as f64 / self.elapsed.as_secs_f64()
    }
}

/// Publishes `load` and waits for it; `case` names it in the cost table.
pub async fn measure(
    env: &mut Env,
    ctx: &Ctx,
    load: &Load,
    case: &str,
) -> anyhow::Result<Measured> {
    env.receiver.take();
    let connections_before = env.receiver.connections();
    let deliveries = load.events * load.healthy.len() as u64;
    let meter = env.meter(ctx).await;
    let published = publish(&env.apis, load.events, load.tasks, load.how, load.per_event).await?;
    eprintln!(
        "[bench]   published {} events in {:.2} s; waiting for {deliveries} deliveries",
        published.events.len(),
        published.elapsed.as_secs_f64()
    );
    if load.backlog {
        env.restart(ctx, &[]).await?;
    }
    env.wait_arrivals(deliveries, ctx.stall).await?;
    let seen_all = Instant::now();
    // Before deliveryStats is polled: those queries are the bench's, not the events'.
    let cost = env
        .cost(
            ctx,
            meter,
            case,
            published.events.len() as u64,
            env.receiver.count().min(deliveries),
        )
        .await;
    let exact = load.exact_stats;
    let (stats, stats_ok) = env
        .wait_stats(ctx.stall, |s| {
            if exact {
                s.succeeded == deliveries && s.attempts == deliveries
            } else {
                s.succeeded >= deliveries
            }
        })
        .await?;
    let stats_seen = Instant::now();
    let stats_query = Instant::now();
    env.api.delivery_stats().await?;
    let stats_query = stats_query.elapsed();
    tokio::time::sleep(ctx.settle()).await;
    let arrivals = env.receiver.take();
    let last = arrivals
        .iter()
        .map(|a| a.at)
        .filter(|at| *at <= seen_all)
        .max()
        .unwrap_or(seen_all);
    let integrity = Integrity::check(&published.events, &load.healthy, &arrivals);
    let end_to_end = end_to_end(&published, &arrivals);
    let origin = if load.backlog {
        arrivals.iter().map(|a| a.at).min().unwrap_or(last)
    } else {
        published.started
    };
    Ok(Measured {
        end_to_end,
        cost,
        stats_query,
        connections: env.receiver.connections() - connections_before,
        deliveries,
        elapsed: last.saturating_duration_since(origin),
        stats,
        stats_ok,
        stats_lag: stats_seen.saturating_duration_since(last),
        integrity,
        publish: published,
    })
}

/// Request sent → arrival, for every arrival of a published event.
fn end_to_end(published: &Published, arrivals: &[crate::receiver::Arrival]) -> Latencies {
    let sent: std::collections::HashMap<_, _> =
        published.events.iter().zip(&published.sent).collect();
    let mut latencies = Latencies::precise();
    for arrival in arrivals {
        if let Some(sent) = sent.get(&arrival.event) {
            latencies.record(arrival.at.saturating_duration_since(**sent));
        }
    }
    latencies
}

pub fn table(title: &str) -> Table {
    Table::new(
        title,
        vec![
            "case",
            "events",
            "deliveries",
            "publish s",
            "publish ev/s",
            "elapsed s",
            "deliveries/s",
            "succeeded",
            "attempts",
            "stats lag s",
            "stats ms",
            "conns",
            "lost",
            "dup",
        ],
    )
}

pub fn row(case: &str, m: &Measured) -> Vec<Cell> {
    let stats_lag = if m.stats_ok {
        Cell::Num(m.stats_lag.as_secs_f64(), 2)
    } else {
        Cell::Text("never".into())
    };
    vec![
        Cell::Text(case.into()),
        Cell::Int(m.publish.events.len() as u64),
        Cell::Int(m.deliveries),
        Cell::Num(m.publish.elapsed.as_secs_f64(), 2),
        Cell::Num(m.publish.rate(), 0),
        Cell::Num(m.elapsed.as_secs_f64(), 2),
        Cell::Num(m.rate(), 0),
        Cell::Int(m.stats.succeeded),
        Cell::Int(m.stats.attempts),
        stats_lag,
        Cell::Num(m.stats_query.as_secs_f64() * 1000.0, 0),
        Cell::Int(m.connections),
        Cell::Int(m.integrity.lost),
        Cell::Int(m.integrity.duplicates),
    ]
}

/// Notes for a run whose stats never agreed.
pub fn stats_note(section: &mut Section, case: &str, m: &Measured, exact: bool) {
    if !m.stats_ok {
        let wanted = if exact { "exactly" } else { "at least" };
        section.note(format!(
            "{case}: deliveryStats never showed {wanted} {} SUCCEEDED{}: last {:?}",
            m.deliveries,
            if exact { " with as many attempts" } else { "" },
            m.stats
        ));
    }
    if m.integrity.unexpected > 0 {
        section.note(format!(
            "{case}: {} arrivals of events not published in this run",
            m.integrity.unexpected
        ));
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new("throughput", ctx.params(crate::Scenario::Throughput));
    let mut table =
        table("deliveries/s (live: first publish → last arrival; backlog: first → last arrival)");
    let cases = ctx
        .sizes
        .endpoints
        .iter()
        .flat_map(|&e| [(e, false), (e, true)]);
    for (endpoints, backlog) in cases {
        let case = format!("E={endpoints}{}", if backlog { " backlog" } else { "" });
        eprintln!("[bench]   throughput {case}");
        let label = format!(
            "throughput-e{endpoints}{}",
            if backlog { "-backlog" } else { "" }
        );
        let extra: &[&str] = if backlog { &["--no-worker"] } else { &[] };
        let mut env = Env::start_with(ctx, &label, extra).await?;
        let healthy = env.healthy_webhooks(endpoints).await?;
        let load = Load {
            backlog,
            ..Load::batched(ctx, ctx.sizes.events, healthy, endpoints)
        };
        let measured = measure(&mut env, ctx, &load, &case).await?;
        table.row(row(&case, &measured));
        stats_note(&mut section, &case, &measured, true);
        section.integrity.push((case.clone(), measured.integrity));
        section.costs.push(measured.cost);
        env.stop(&mut section, &case).await;
    }
    section.tables.push(table);
    section.note(
        "E=n: publishing while the worker delivers, timed from the first publish to the last \
         arrival; E=n backlog: published with `--no-worker`, then a server with a worker is \
         started on the same database, timed from the first arrival to the last",
    );
    section.note("conns: TCP connections the receiver accepted (the server's connection reuse)");
    section.note(
        "cost of a backlog case: publishing on the server without a worker, its restart, and \
         the drain",
    );
    section.note(
        "stats lag: from the last arrival at the receiver until deliveryStats showed every \
         delivery SUCCEEDED and every attempt recorded (includes polling); stats ms: one deliveryStats query at the end",
    );
    Ok(section)
}
