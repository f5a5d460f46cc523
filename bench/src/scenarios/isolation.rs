//! Scenario 5, `isolation`: throughput to a healthy endpoint alone, then with
//! a second webhook whose endpoint accepts requests and never answers.

use super::{
    Ctx, Env,
    throughput::{self, Load},
};
use crate::{
    Scenario,
    api::WebhookSpec,
    report::{Cell, Section, Table},
};

/// How long hookline waits for the hanging endpoint.
const HANG_TIMEOUT_MS: u32 = 10_000;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new("isolation", ctx.params(Scenario::Isolation));
    let mut table = throughput::table("healthy deliveries/s, without and with a hanging endpoint");
    let mut rates = Vec::new();
    for hanging in [false, true] {
        rates.push(measure_case(ctx, hanging, &mut section, &mut table).await?);
    }
    section.tables.push(table);
    if let [alone, with_hang] = rates[..] {
        section.tables.push(cost_table(alone, with_hang));
    }
    explain(&mut section);
    Ok(section)
}

/// One run on a fresh server, with or without the hanging endpoint: its
/// row, notes, integrity and cost; the healthy deliveries per second.
async fn measure_case(
    ctx: &Ctx,
    hanging: bool,
    section: &mut Section,
    table: &mut Table,
) -> anyhow::Result<f64> {
    let (case, label) = if hanging {
        ("with hanging", "isolation-hang")
    } else {
        ("healthy only", "isolation-baseline")
    };
    eprintln!("[bench]   isolation: {case}");
    let mut env = Env::start(ctx, label).await?;
    let healthy = env.healthy_webhooks(1).await?;
    if hanging {
        add_hanging_webhook(&env).await?;
    }
    let per_event = if hanging { 2 } else { 1 };
    let load = Load {
        exact_stats: !hanging,
        ..Load::batched(ctx, ctx.sizes.isolation_events, healthy, per_event)
    };
    let measured = throughput::measure(&mut env, ctx, &load, case).await?;
    table.row(throughput::row(case, &measured));
    throughput::stats_note(section, case, &measured, load.exact_stats);
    if hanging {
        section.note(format!(
            "{case}: the hanging endpoint received {} requests (held open, timeout {HANG_TIMEOUT_MS} ms)",
            env.receiver.hung()
        ));
    }
    if hanging && measured.elapsed.as_millis() < u128::from(HANG_TIMEOUT_MS) {
        section.note(format!(
            "{case}: the run took {:.1} s, less than the hanging endpoint's timeout: it \
             measures the extra deliveries and claims that skip the busy lane, not timeouts",
            measured.elapsed.as_secs_f64()
        ));
    }
    let rate = measured.rate();
    section.integrity.push((case.into(), measured.integrity));
    section.costs.push(measured.cost);
    env.stop(section, case).await;
    Ok(rate)
}

/// A second webhook, to an endpoint that accepts requests and never answers.
async fn add_hanging_webhook(env: &Env) -> anyhow::Result<()> {
    let spec = WebhookSpec {
        name: "bench hanging".into(),
        urls: vec![env.receiver.hang_url(0)],
        max_attempts: 3,
        initial_interval_ms: 60_000,
        max_interval_ms: 60_000,
        timeout_ms: HANG_TIMEOUT_MS,
        ordering: None,
        extra: None,
    };
    env.api.create_webhook(&spec).await?;
    Ok(())
}

fn cost_table(alone: f64, with_hang: f64) -> Table {
    let mut summary = Table::new(
        "cost of the hanging endpoint",
        vec!["healthy only /s", "with hanging /s", "ratio", "cost %"],
    );
    let ratio = with_hang / alone;
    summary.row(vec![
        Cell::Num(alone, 0),
        Cell::Num(with_hang, 0),
        Cell::Num(ratio, 3),
        Cell::Num((1.0 - ratio) * 100.0, 1),
    ]);
    summary
}

/// What the numbers with the hanging endpoint include.
fn explain(section: &mut Section) {
    section.note(
        "with hanging: every event makes two deliveries (one per webhook), so publishing and \
         claiming do twice the work; the hanging endpoint ties up its own lane of 32 requests",
    );
    section.note(
        "cost: deliveries counts the healthy endpoint's; with hanging, each event also makes \
         one to the hanging endpoint",
    );
    section.note(
        "with hanging: attempts include the hanging endpoint's, so deliveryStats is only checked \
         for the healthy endpoint's SUCCEEDED count",
    );
}
