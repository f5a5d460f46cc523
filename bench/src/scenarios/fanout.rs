//! Scenario 4, `fanout`: S WebSocket subscribers on `deliveryAttempts` while
//! the latency scenario's open loop runs; per item, the time from the
//! attempt's end (startedAt + durationMs) to its arrival at a subscriber.

use std::time::{Duration, Instant};

use super::{
    Ctx, Env,
    latency::{self, OpenLoop},
};
use crate::{
    Scenario,
    api::DeliveryStats,
    report::{Cell, Section, Status, Table},
    stats::Latencies,
    ws::{self, Fanout, SubscriberResult},
};

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new("fanout", ctx.params(Scenario::Fanout));
    // Every subscriber belongs to the bench's one tenant: raise the
    // per-tenant cap (500 by default), or the rest would be refused with
    // TOO_MANY_SUBSCRIPTIONS and counted as lost.
    let cap = (ctx.sizes.subscribers as usize + 100).to_string();
    let mut env = Env::start_with(ctx, "fanout", &["--max-subscriptions-per-tenant", &cap]).await?;
    env.healthy_webhooks(1).await?;
    if let Some(reason) = ws::probe(env.server.addr, &env.token).await? {
        section.status = Status::Skipped(format!(
            "the server does not offer `subscription {{ deliveryAttempts }}` yet: {reason}"
        ));
        env.stop(&mut section, "fanout").await;
        return Ok(section);
    }
    let fanout = subscribe(&env, ctx.sizes.subscribers).await?;
    let outcome = load_while_subscribed(&mut env, ctx, fanout).await?;
    describe(&mut section, ctx, outcome);
    env.stop(&mut section, "fanout").await;
    Ok(section)
}

/// Opens `subscribers` subscriptions and gives the server a moment to have them.
async fn subscribe(env: &Env, subscribers: u32) -> anyhow::Result<Fanout> {
    eprintln!("[bench]   opening {subscribers} subscriptions");
    let fanout = Fanout::connect(env.server.addr, &env.token, subscribers).await?;
    eprintln!(
        "[bench]   {} subscribed in {:.1} s ({} failed); starting the load",
        fanout.connected(),
        fanout.connect_time.as_secs_f64(),
        fanout.connect_failures
    );
    // Subscriptions are live once the server has them: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(fanout)
}

/// The load, what `deliveryStats` said afterwards, and what the subscribers got.
struct Outcome {
    load: OpenLoop,
    stats: DeliveryStats,
    stats_ok: bool,
    /// Every attempt, once to every connected subscriber.
    expected: u64,
    /// Every expected item arrived before the subscribers went quiet.
    quiet: bool,
    items: Items,
}

/// Runs the latency scenario's open loop, then listens until every
/// attempt reached every subscriber or they go quiet.
async fn load_while_subscribed(
    env: &mut Env,
    ctx: &Ctx,
    fanout: Fanout,
) -> anyhow::Result<Outcome> {
    let load = latency::open_loop(env, ctx).await?;
    let (stats, stats_ok) = env
        .wait_stats(ctx.stall, |s| {
            s.attempts == load.published && s.succeeded == load.published
        })
        .await?;
    let expected = stats.attempts * fanout.connected();
    let quiet = wait_quiet(&fanout, expected, quiet_time(ctx)).await;
    let items = Items::sum(&fanout.finish().await);
    Ok(Outcome {
        load,
        stats,
        stats_ok,
        expected,
        quiet,
        items,
    })
}

/// How long the subscribers may send nothing before the bench stops waiting.
fn quiet_time(ctx: &Ctx) -> Duration {
    ctx.stall.min(Duration::from_secs(5))
}

/// The subscription items, summed over every subscriber.
struct Items {
    subscribers: u64,
    received: u64,
    dropped: u64,
    lag_notices: u64,
    latencies: Latencies,
    /// Subscribers that ended with an error, and the first such error.
    errors: u64,
    first_error: Option<String>,
}

impl Items {
    fn sum(results: &[SubscriberResult]) -> Self {
        let mut items = Self {
            subscribers: results.len() as u64,
            received: 0,
            dropped: 0,
            lag_notices: 0,
            latencies: Latencies::precise(),
            errors: 0,
            first_error: None,
        };
        for result in results {
            items.received += result.received;
            items.dropped += result.dropped;
            items.lag_notices += result.lag_notices;
            if let Some(latencies) = &result.latencies {
                items.latencies.add(latencies);
            }
            if let Some(error) = &result.error {
                items.errors += 1;
                items.first_error.get_or_insert_with(|| error.clone());
            }
        }
        items
    }
}

/// The section's tables, notes, integrity and cost.
fn describe(section: &mut Section, ctx: &Ctx, outcome: Outcome) {
    let Outcome {
        load,
        stats,
        stats_ok,
        expected,
        quiet,
        items,
    } = outcome;
    section
        .tables
        .push(items_table(&items, stats.attempts, expected));
    let mut load_table =
        latency::table("the webhook deliveries meanwhile (open loop, one endpoint)");
    latency::describe(section, &mut load_table, &load);
    section.tables.push(load_table);
    section.note(format!(
        "{} LAGGED notices; {} subscribers ended with an error{}",
        items.lag_notices,
        items.errors,
        items
            .first_error
            .map_or(String::new(), |e| format!(" (first: {e})"))
    ));
    if !stats_ok {
        section.note(format!(
            "deliveryStats never showed {} attempts, all SUCCEEDED: last {stats:?}",
            load.published
        ));
    }
    if !quiet {
        section.note(format!(
            "stopped waiting for subscription items after {:?} without a new one",
            quiet_time(ctx)
        ));
    }
    section.note(
        "startedAt has millisecond precision and durationMs is truncated: latencies read up to ~2 ms high",
    );
    section
        .integrity
        .push(("deliveries".into(), load.integrity));
    // Includes sending every attempt to every subscriber.
    section.costs.push(load.cost);
}

fn items_table(items: &Items, attempts: u64, expected: u64) -> Table {
    let summary = items.latencies.summary();
    let mut table = Table::new(
        "subscription items: receive time − (startedAt + durationMs)",
        vec![
            "subscribers",
            "attempts",
            "expected",
            "received",
            "lost",
            "LAGGED dropped",
            "p50 ms",
            "p99 ms",
            "max ms",
        ],
    );
    table.row(vec![
        Cell::Int(items.subscribers),
        Cell::Int(attempts),
        Cell::Int(expected),
        Cell::Int(items.received),
        Cell::Int(expected.saturating_sub(items.received)),
        Cell::Int(items.dropped),
        Cell::Num(summary.p50_ms, 1),
        Cell::Num(summary.p99_ms, 1),
        Cell::Num(summary.max_ms, 1),
    ]);
    table
}

/// Waits until every expected item arrived, or nothing came for `quiet`.
async fn wait_quiet(fanout: &Fanout, expected: u64, quiet: Duration) -> bool {
    let mut last = (fanout.received(), Instant::now());
    loop {
        let now = fanout.received();
        if now >= expected {
            return true;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > quiet {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
