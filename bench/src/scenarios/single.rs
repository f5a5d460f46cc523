//! Scenario `single`: end-to-end throughput when every event is its own
//! `publishEvent` request, as most producers send them. A closed loop of
//! `--connections` tasks, each waiting for its answer before sending the
//! next, to E endpoints per event; timed from the first publish to the last
//! arrival, like `throughput`'s batched live case beside it.

use super::{
    Ctx, Env, Publish,
    throughput::{self, Load},
};
use crate::{
    Scenario,
    report::{Cell, Section, Table},
};

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let sizes = &ctx.sizes;
    let mut section = Section::new("single", ctx.params(Scenario::Single));
    let mut table = Table::new(
        "deliveries/s with one publishEvent per request (first publish → last arrival)",
        vec![
            "case",
            "events",
            "deliveries",
            "connections",
            "publish ev/s",
            "elapsed s",
            "deliveries/s",
            "answer p50 ms",
            "answer p99 ms",
            "arrival p50 ms",
            "arrival p99 ms",
            "lost",
            "dup",
        ],
    );
    for &endpoints in &sizes.single_endpoints {
        let case = format!("E={endpoints}");
        eprintln!("[bench]   single {case}");
        let mut env = Env::start(ctx, &format!("single-e{endpoints}")).await?;
        let healthy = env.healthy_webhooks(endpoints).await?;
        let load = Load {
            how: Publish::One,
            tasks: sizes.connections,
            ..Load::batched(ctx, sizes.single_events, healthy, endpoints)
        };
        let m = throughput::measure(&mut env, ctx, &load, &case).await?;
        let answer = m.publish.requests.summary();
        let arrival = m.end_to_end.summary();
        table.row(vec![
            Cell::Text(case.clone()),
            Cell::Int(m.publish.events.len() as u64),
            Cell::Int(m.deliveries),
            Cell::Int(sizes.connections as u64),
            Cell::Num(m.publish.rate(), 0),
            Cell::Num(m.elapsed.as_secs_f64(), 2),
            Cell::Num(m.rate(), 0),
            Cell::Num(answer.p50_ms, 2),
            Cell::Num(answer.p99_ms, 2),
            Cell::Num(arrival.p50_ms, 2),
            Cell::Num(arrival.p99_ms, 2),
            Cell::Int(m.integrity.lost),
            Cell::Int(m.integrity.duplicates),
        ]);
        throughput::stats_note(&mut section, &case, &m, true);
        section.integrity.push((case.clone(), m.integrity));
        section.costs.push(m.cost);
        env.stop(&mut section, &case).await;
    }
    section.tables.push(table);
    section.note(
        "answer: publishEvent request sent → its answer read; arrival: that request sent → \
         each of the event's deliveries at the receiver",
    );
    Ok(section)
}
