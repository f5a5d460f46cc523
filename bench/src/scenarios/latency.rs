//! Scenario 3, `latency`: an open loop of `publishEvent` at a fixed rate (sent
//! on a timer, never waiting for earlier answers) to one endpoint; for each
//! event, the time from sending the request to its arrival at the receiver.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::{Ctx, Env};
use crate::{
    Scenario,
    cost::Cost,
    receiver::EventKey,
    report::{Cell, Section, Table},
    stats::{Integrity, Latencies, Summary, first_arrivals},
};

pub struct OpenLoop {
    pub planned: u64,
    pub published: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Request sent → arrival at the receiver.
    pub end_to_end: Latencies,
    /// Request sent → `publishEvent` answered.
    pub publish: Latencies,
    /// Latest a send happened after its slot on the timer.
    pub max_send_slip: Duration,
    /// Actual sending rate.
    pub sent_rate: f64,
    pub integrity: Integrity,
    pub complete: bool,
    /// From the first send until every event arrived.
    pub cost: Cost,
}

/// Runs the open loop on `env` (one healthy endpoint, 0) and waits for
/// every published event to arrive.
pub async fn open_loop(env: &mut Env, ctx: &Ctx) -> anyhow::Result<OpenLoop> {
    let rate = f64::from(ctx.sizes.rate);
    let planned = ctx.open_loop_events();
    env.receiver.take();
    let meter = env.meter(ctx).await;
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = JoinSet::new();
    let mut max_send_slip = Duration::ZERO;
    for i in 0..planned {
        let slot = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(slot).await;
        max_send_slip = max_send_slip.max(slot.elapsed());
        let api = env.api.clone();
        tasks.spawn(async move {
            let sent = Instant::now();
            let result = api.publish_one(i).await;
            (sent, sent.elapsed(), result)
        });
    }
    let sent_rate = planned as f64 / start.elapsed().as_secs_f64();
    let mut sent_at: Vec<(EventKey, Instant)> = Vec::with_capacity(planned as usize);
    let mut publish = Latencies::precise();
    let (mut errors, mut first_error) = (0, None);
    while let Some(joined) = tasks.join_next().await {
        let (sent, took, result) = joined?;
        publish.record(took);
        match result {
            Ok((event, _)) => sent_at.push((event, sent)),
            Err(err) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }
    let published = sent_at.len() as u64;
    eprintln!(
        "[bench]   open loop sent {published} events ({errors} errors); waiting for arrivals"
    );
    let complete = env.wait_arrivals(published, ctx.stall).await?;
    let delivered = env.receiver.count().min(published);
    let case = format!("{rate:.0} events/s");
    let cost = env.cost(ctx, meter, &case, published, delivered).await;
    tokio::time::sleep(ctx.settle()).await;
    let arrivals = env.receiver.take();
    let first = first_arrivals(&arrivals);
    let mut end_to_end = Latencies::precise();
    for (event, sent) in &sent_at {
        if let Some(arrived) = first.get(event) {
            end_to_end.record(arrived.saturating_duration_since(*sent));
        }
    }
    let events: Vec<EventKey> = sent_at.iter().map(|(event, _)| *event).collect();
    Ok(OpenLoop {
        planned,
        published,
        errors,
        first_error,
        end_to_end,
        publish,
        max_send_slip,
        sent_rate,
        integrity: Integrity::check(&events, &[0], &arrivals),
        complete,
        cost,
    })
}

pub fn table(title: &str) -> Table {
    Table::new(
        title,
        vec!["measure", "count", "p50 ms", "p90 ms", "p99 ms", "max ms"],
    )
}

pub fn row(measure: &str, s: Summary) -> Vec<Cell> {
    vec![
        Cell::Text(measure.into()),
        Cell::Int(s.count),
        Cell::Num(s.p50_ms, 1),
        Cell::Num(s.p90_ms, 1),
        Cell::Num(s.p99_ms, 1),
        Cell::Num(s.max_ms, 1),
    ]
}

/// The load's rows and notes, shared with `fanout`.
pub fn describe(section: &mut Section, table: &mut Table, run: &OpenLoop) {
    table.row(row("publish → arrival", run.end_to_end.summary()));
    table.row(row("publishEvent answer", run.publish.summary()));
    section.note(format!(
        "sent {} of {} planned at {:.0}/s (latest send {:.1} ms after its slot); {} publish errors{}",
        run.published,
        run.planned,
        run.sent_rate,
        run.max_send_slip.as_secs_f64() * 1000.0,
        run.errors,
        run.first_error
            .as_ref()
            .map_or(String::new(), |e| format!(", first: {e}"))
    ));
    section.note(format!(
        "deliveries: {} arrived, {} lost, {} duplicated{}",
        run.integrity.delivered,
        run.integrity.lost,
        run.integrity.duplicates,
        if run.complete {
            ""
        } else {
            " (gave up waiting: no progress)"
        }
    ));
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new("latency", ctx.params(Scenario::Latency));
    let mut env = Env::start(ctx, "latency").await?;
    env.healthy_webhooks(1).await?;
    let run = open_loop(&mut env, ctx).await?;
    let mut table = table("open loop, one endpoint");
    describe(&mut section, &mut table, &run);
    section.tables.push(table);
    if run.errors > 0 {
        section.integrity.push((
            "publish errors".into(),
            Integrity {
                expected: run.planned,
                delivered: run.published,
                lost: run.errors,
                ..Integrity::default()
            },
        ));
    }
    section.integrity.push(("deliveries".into(), run.integrity));
    section.costs.push(run.cost);
    env.stop(&mut section, "latency").await;
    Ok(section)
}
