//! Scenario 5, `isolation`: throughput to a healthy endpoint alone, then with
//! a second webhook whose endpoint accepts requests and never answers.

use super::{
    Ctx, Env,
    throughput::{self, Load},
};
use crate::{
    Scenario,
    api::WebhookSpec,
    report::{Cell, Section},
};

/// How long hookline waits for the hanging endpoint.
const HANG_TIMEOUT_MS: u32 = 10_000;

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new("isolation", ctx.params(Scenario::Isolation));
    let mut table = throughput::table("healthy deliveries/s, without and with a hanging endpoint");
    let mut rates = Vec::new();
    for hanging in [false, true] {
        let case = if hanging {
            "with hanging"
        } else {
            "healthy only"
        };
        eprintln!("[bench]   isolation: {case}");
        let label = if hanging {
            "isolation-hang"
        } else {
            "isolation-baseline"
        };
        let mut env = Env::start(ctx, label).await?;
        let healthy = env.healthy_webhooks(1).await?;
        if hanging {
            let spec = WebhookSpec {
                name: "bench hanging".into(),
                urls: vec![env.receiver.hang_url(0)],
                max_attempts: 3,
                initial_interval_ms: 60_000,
                max_interval_ms: 60_000,
                timeout_ms: HANG_TIMEOUT_MS,
            };
            env.api.create_webhook(&spec).await?;
        }
        let per_event = if hanging { 2 } else { 1 };
        let load = Load {
            exact_stats: !hanging,
            ..Load::batched(ctx, ctx.sizes.isolation_events, healthy, per_event)
        };
        let measured = throughput::measure(&mut env, ctx, &load, case).await?;
        table.row(throughput::row(case, &measured));
        throughput::stats_note(&mut section, case, &measured, load.exact_stats);
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
        rates.push(measured.rate());
        section.integrity.push((case.into(), measured.integrity));
        section.costs.push(measured.cost);
        env.stop(&mut section, case).await;
    }
    section.tables.push(table);
    if let [alone, with_hang] = rates[..] {
        let mut summary = crate::report::Table::new(
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
        section.tables.push(summary);
    }
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
    Ok(section)
}
