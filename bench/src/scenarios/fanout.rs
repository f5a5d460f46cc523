//! Scenario 4, `fanout`: S WebSocket subscribers on `deliveryAttempts` while
//! the latency scenario's open loop runs; per item, the time from the
//! attempt's end (startedAt + durationMs) to its arrival at a subscriber.

use std::time::{Duration, Instant};

use super::{Ctx, Env, latency};
use crate::{
    Scenario,
    report::{Cell, Section, Status, Table},
    stats::Latencies,
    ws::{self, Fanout},
};

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new("fanout", ctx.params(Scenario::Fanout));
    let mut env = Env::start(ctx, "fanout").await?;
    env.healthy_webhooks(1).await?;
    if let Some(reason) = ws::probe(env.server.addr, &env.token).await? {
        section.status = Status::Skipped(format!(
            "the server does not offer `subscription {{ deliveryAttempts }}` yet: {reason}"
        ));
        env.stop(&mut section, "fanout").await;
        return Ok(section);
    }
    let subscribers = ctx.sizes.subscribers;
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
    let load = latency::open_loop(&mut env, ctx).await?;
    let (stats, stats_ok) = env
        .wait_stats(ctx.stall, |s| {
            s.attempts == load.published && s.succeeded == load.published
        })
        .await?;
    let expected = stats.attempts * fanout.connected();
    let quiet = wait_quiet(&fanout, expected, ctx.stall.min(Duration::from_secs(5))).await;
    let results = fanout.finish().await;

    let mut merged = Latencies::precise();
    let (mut received, mut dropped, mut notices, mut errors) = (0, 0, 0, 0);
    let mut first_error = None;
    for result in &results {
        received += result.received;
        dropped += result.dropped;
        notices += result.lag_notices;
        if let Some(latencies) = &result.latencies {
            merged.add(latencies);
        }
        if let Some(error) = &result.error {
            errors += 1;
            first_error.get_or_insert_with(|| error.clone());
        }
    }
    let summary = merged.summary();
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
        Cell::Int(results.len() as u64),
        Cell::Int(stats.attempts),
        Cell::Int(expected),
        Cell::Int(received),
        Cell::Int(expected.saturating_sub(received)),
        Cell::Int(dropped),
        Cell::Num(summary.p50_ms, 1),
        Cell::Num(summary.p99_ms, 1),
        Cell::Num(summary.max_ms, 1),
    ]);
    section.tables.push(table);
    let mut load_table =
        latency::table("the webhook deliveries meanwhile (open loop, one endpoint)");
    latency::describe(&mut section, &mut load_table, &load);
    section.tables.push(load_table);
    section.note(format!(
        "{notices} LAGGED notices; {errors} subscribers ended with an error{}",
        first_error.map_or(String::new(), |e| format!(" (first: {e})"))
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
            ctx.stall.min(Duration::from_secs(5))
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
    env.stop(&mut section, "fanout").await;
    Ok(section)
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
