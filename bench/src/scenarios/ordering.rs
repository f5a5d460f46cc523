//! Scenario `ordering`: one endpoint of a webhook that delivers in order by
//! the label `affiliateId`, with every event on one key (a single sequence:
//! one delivery at a time) and spread over 1 000 keys, beside the same
//! endpoint unordered; deliveries/s from the first publish to the last
//! arrival, nothing lost or duplicated.

use super::{Ctx, Env, throughput};
use crate::{api::WebhookSpec, report::Section};

/// Events published for the one-key case: a single sequence is delivered
/// one round trip at a time, so a tenth of the others' events.
pub fn one_key_events(events: u64) -> u64 {
    (events / 10).max(10)
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new("ordering", ctx.params(crate::Scenario::Ordering));
    let mut table =
        throughput::table("deliveries/s, ordered by key (first publish → last arrival)");
    let cases: [(&str, Option<u64>); 3] = [
        ("unordered", None),
        ("1 key", Some(1)),
        ("1000 keys", Some(1_000)),
    ];
    for (case, keys) in cases {
        eprintln!("[bench]   ordering {case}");
        let label = format!("ordering-{}", keys.map_or("none".into(), |k| k.to_string()));
        let mut env = Env::start(ctx, &label).await?;
        let spec = WebhookSpec {
            ordering: keys.map(|_| "affiliateId"),
            ..WebhookSpec::healthy("bench ordered", vec![env.receiver.url(0)])
        };
        env.api.create_webhook(&spec).await?;
        env.api = env.api.with_keys(keys.unwrap_or(1_000));
        let events = if keys == Some(1) {
            one_key_events(ctx.sizes.events)
        } else {
            ctx.sizes.events
        };
        let load = throughput::Load::batched(ctx, events, vec![0], 1);
        let measured = throughput::measure(&mut env, ctx, &load, case).await?;
        table.row(throughput::row(case, &measured));
        throughput::stats_note(&mut section, case, &measured, true);
        section
            .integrity
            .push((case.to_owned(), measured.integrity));
        section.costs.push(measured.cost);
        env.stop(&mut section, case).await;
    }
    section.tables.push(table);
    section.note(
        "one endpoint; the ordered webhook keys its sequences by the label `affiliateId`, which \
         the events cycle over (1 key: a single sequence, delivered one request at a time); \
         unordered: the same events to a webhook without ordering",
    );
    Ok(section)
}
