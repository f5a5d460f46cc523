//! Scenario `capacity`: what a delivery costs hookline and PostgreSQL with
//! 1, 3 and 5 instances on one database, split into a cost per event and a
//! cost per endpoint, and the sizing that follows from it.
//!
//! Every run publishes `--events` events (100 per `publishEvents` call, the
//! publishing loops spread over the instances) to E = 1 and E = 5 endpoints
//! and times them from the first publish to the last arrival. On one machine
//! the instances share its cores, so the total cannot grow with them; what
//! must not grow is the CPU each delivery costs. From E = 1 and E = 5, at
//! each instance count, cost per event = a + b × E: `a` is what an event
//! costs whatever its fan-out, `b` what each endpoint adds.

use std::time::Duration;

use super::{
    Ctx, Env,
    throughput::{self, Load},
};
use crate::{
    Scenario,
    cost::Cost,
    report::{Cell, Section, Status, Table},
    server::DbKind,
};

/// Endpoints per event of the two runs at each instance count.
pub const ENDPOINTS: [u32; 2] = [1, 5];
/// Share of a core the sizing plans to use, leaving room for bursts.
const UTILISATION: f64 = 0.6;
/// Cores the sizing gives each instance.
const CORES_PER_INSTANCE: f64 = 2.0;
/// Fewest instances the sizing proposes: one can fail.
const MIN_INSTANCES: f64 = 2.0;
/// Delivery rates the sizing table is for.
const RATES: [f64; 3] = [1_000.0, 10_000.0, 100_000.0];

/// Per event at E endpoints: milliseconds of CPU (hookline's instances
/// together, PostgreSQL), WAL bytes.
#[derive(Clone, Copy, Default)]
struct PerEvent {
    hookline_ms: f64,
    postgres_ms: f64,
    wal_bytes: f64,
}

impl PerEvent {
    fn of(cost: &Cost) -> Self {
        let events = cost.events.max(1) as f64;
        Self {
            hookline_ms: cost.cpu.server_s * 1000.0 / events,
            postgres_ms: cost.cpu.db_s.unwrap_or(0.0) * 1000.0 / events,
            wal_bytes: cost.statements.wal_bytes().unwrap_or(f64::NAN) / events,
        }
    }

    /// `self` at E1 and `other` at E2 as a + b × E: (a, b).
    fn split(self, e1: u32, other: Self, e2: u32) -> (Self, Self) {
        let span = f64::from(e2 - e1);
        let b = |x1: f64, x2: f64| (x2 - x1) / span;
        let per_endpoint = Self {
            hookline_ms: b(self.hookline_ms, other.hookline_ms),
            postgres_ms: b(self.postgres_ms, other.postgres_ms),
            wal_bytes: b(self.wal_bytes, other.wal_bytes),
        };
        let a = |x1: f64, slope: f64| x1 - slope * f64::from(e1);
        let fixed = Self {
            hookline_ms: a(self.hookline_ms, per_endpoint.hookline_ms),
            postgres_ms: a(self.postgres_ms, per_endpoint.postgres_ms),
            wal_bytes: a(self.wal_bytes, per_endpoint.wal_bytes),
        };
        (fixed, per_endpoint)
    }

    /// Per delivery, for events of `mix` endpoints: (a + b × mix) / mix.
    fn per_delivery(fixed: Self, per_endpoint: Self, mix: f64) -> Self {
        let at = |a: f64, b: f64| (a + b * mix) / mix;
        Self {
            hookline_ms: at(fixed.hookline_ms, per_endpoint.hookline_ms),
            postgres_ms: at(fixed.postgres_ms, per_endpoint.postgres_ms),
            wal_bytes: at(fixed.wal_bytes, per_endpoint.wal_bytes),
        }
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new("capacity", ctx.params(Scenario::Capacity));
    if ctx.options.db != DbKind::Postgres {
        section.status = Status::Skipped(
            "several instances share one PostgreSQL database; on SQLite one instance is the \
             limit (run with --db postgres)"
                .into(),
        );
        return Ok(section);
    }
    let (mut runs, mut split) = tables();
    let mut worst: Option<PerEvent> = None;
    let mix = f64::from(ctx.sizes.capacity_mix);
    for &instances in &ctx.sizes.instances {
        let mut at = Vec::new();
        for endpoints in ENDPOINTS {
            let (cost, row) = measure(ctx, &mut section, instances, endpoints).await?;
            runs.row(row);
            at.push(PerEvent::of(&cost));
            section.costs.push(cost);
        }
        let (fixed, per_endpoint) = at[0].split(ENDPOINTS[0], at[1], ENDPOINTS[1]);
        split.row(vec![
            Cell::Int(instances as u64),
            Cell::Num(fixed.hookline_ms, 3),
            Cell::Num(per_endpoint.hookline_ms, 3),
            Cell::Num(fixed.postgres_ms, 3),
            Cell::Num(per_endpoint.postgres_ms, 3),
            Cell::Num(fixed.wal_bytes, 0),
            Cell::Num(per_endpoint.wal_bytes, 0),
        ]);
        let here = PerEvent::per_delivery(fixed, per_endpoint, mix);
        worst = Some(match worst {
            None => here,
            Some(w) => PerEvent {
                hookline_ms: w.hookline_ms.max(here.hookline_ms),
                postgres_ms: w.postgres_ms.max(here.postgres_ms),
                wal_bytes: w.wal_bytes.max(here.wal_bytes),
            },
        });
    }
    section.tables.push(runs);
    section.tables.push(split);
    if let Some(cost) = worst {
        section.tables.push(sizing(cost, mix));
    }
    section.note(format!(
        "sizing: for events of {mix} endpoints each, at the highest CPU per delivery measured at \
         any instance count; cores = rate x ms per delivery / 1000 / {UTILISATION}; instances of \
         {CORES_PER_INSTANCE} cores, at least {MIN_INSTANCES}. It assumes what this machine cannot \
         show: PostgreSQL's CPU per delivery staying flat as its cores grow (a single primary; \
         beyond a few tens of cores WAL and lock contention decide), receivers answering at once, \
         payloads of about 200 bytes"
    ));
    Ok(section)
}

/// The scenario's parameters, for the report's header.
pub fn params(s: &super::Sizes) -> Vec<(&'static str, String)> {
    vec![
        ("events", s.events.to_string()),
        ("instances", super::join(&s.instances)),
        ("endpoints", super::join(&ENDPOINTS)),
        ("batch", super::BATCH.to_string()),
        ("publishers", format!("max({}, instances)", s.publishers)),
        (
            "sizing_mix",
            format!("{} endpoints per event", s.capacity_mix),
        ),
    ]
}

/// The runs' table and the split's, empty.
fn tables() -> (Table, Table) {
    let runs = Table::new(
        "deliveries/s and CPU per delivery with N instances on one PostgreSQL database \
         (publishEvents x 100)",
        vec![
            "case",
            "deliveries",
            "deliveries/s",
            "hookline ms/dlv",
            "postgres ms/dlv",
            "statements/ev",
            "WAL bytes/dlv",
            "lost",
            "dup",
        ],
    );
    let split = Table::new(
        "CPU per event = a + b x E (from E = 1 and E = 5): a per event, b per endpoint",
        vec![
            "instances",
            "hookline a ms",
            "hookline b ms",
            "postgres a ms",
            "postgres b ms",
            "WAL a bytes",
            "WAL b bytes",
        ],
    );
    (runs, split)
}

/// One run: `instances` on one database, E = `endpoints`.
async fn measure(
    ctx: &Ctx,
    section: &mut Section,
    instances: usize,
    endpoints: u32,
) -> anyhow::Result<(Cost, Vec<Cell>)> {
    let case = format!("N={instances} E={endpoints}");
    eprintln!("[bench]   capacity {case}");
    let mut env = Env::start(ctx, &format!("capacity-n{instances}-e{endpoints}")).await?;
    env.add_instances(ctx, instances).await?;
    let healthy = env.healthy_webhooks(endpoints).await?;
    // Other instances learn of the new webhooks through PostgreSQL's
    // notifications: let them arrive before the first publish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let load = Load {
        tasks: ctx.sizes.publishers.max(instances),
        ..Load::batched(ctx, ctx.sizes.events, healthy, endpoints)
    };
    let m = throughput::measure(&mut env, ctx, &load, &case).await?;
    let deliveries = m.deliveries.max(1) as f64;
    let cpu = &m.cost.cpu;
    let row = vec![
        Cell::Text(case.clone()),
        Cell::Int(m.deliveries),
        Cell::Num(m.rate(), 0),
        Cell::Num(cpu.server_s * 1000.0 / deliveries, 3),
        Cell::Num(cpu.db_s.unwrap_or(0.0) * 1000.0 / deliveries, 3),
        m.cost
            .statements
            .total_calls()
            .map_or(Cell::Text("n/a".into()), |calls| {
                Cell::Num(calls as f64 / m.publish.events.len().max(1) as f64, 2)
            }),
        m.cost
            .statements
            .wal_bytes()
            .map_or(Cell::Text("n/a".into()), |bytes| {
                Cell::Num(bytes / deliveries, 0)
            }),
        Cell::Int(m.integrity.lost),
        Cell::Int(m.integrity.duplicates),
    ];
    throughput::stats_note(section, &case, &m, true);
    section.integrity.push((case.clone(), m.integrity));
    env.stop(section, &case).await;
    Ok((m.cost, row))
}

/// Instances and PostgreSQL cores for each rate in [`RATES`], at `cost` per
/// delivery.
fn sizing(cost: PerEvent, mix: f64) -> Table {
    let mut table = Table::new(
        format!(
            "sizing: hookline instances and PostgreSQL cores (events of {mix} endpoints; \
             {:.3} + {:.3} CPU ms and {:.0} WAL bytes per delivery)",
            cost.hookline_ms, cost.postgres_ms, cost.wal_bytes
        ),
        vec![
            "deliveries/s",
            "events/s",
            "hookline cores",
            "instances",
            "postgres cores",
            "WAL MB/s",
        ],
    );
    for rate in RATES {
        let cores = |ms: f64| rate * ms / 1000.0 / UTILISATION;
        let hookline = cores(cost.hookline_ms);
        table.row(vec![
            Cell::Num(rate, 0),
            Cell::Num(rate / mix, 0),
            Cell::Num(hookline, 1),
            Cell::Num((hookline / CORES_PER_INSTANCE).ceil().max(MIN_INSTANCES), 0),
            Cell::Num(cores(cost.postgres_ms).ceil(), 0),
            Cell::Num(rate * cost.wal_bytes / 1e6, 1),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::PerEvent;

    #[test]
    fn cost_per_event_splits_into_a_fixed_part_and_a_part_per_endpoint() {
        let at = |e: f64| PerEvent {
            hookline_ms: 0.1 + 0.05 * e,
            postgres_ms: 0.2 + 0.1 * e,
            wal_bytes: 1000.0 + 1500.0 * e,
        };
        let (a, b) = at(1.0).split(1, at(5.0), 5);
        assert!((a.hookline_ms - 0.1).abs() < 1e-9 && (b.hookline_ms - 0.05).abs() < 1e-9);
        assert!((a.postgres_ms - 0.2).abs() < 1e-9 && (b.postgres_ms - 0.1).abs() < 1e-9);
        assert!((a.wal_bytes - 1000.0).abs() < 1e-6 && (b.wal_bytes - 1500.0).abs() < 1e-6);
        let d = PerEvent::per_delivery(a, b, 2.0);
        assert!((d.hookline_ms - 0.1).abs() < 1e-9);
        assert!((d.postgres_ms - 0.2).abs() < 1e-9);
    }
}
