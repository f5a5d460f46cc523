//! Scenario `filters`: publishing to a tenant with 1 000 webhooks, one that
//! takes every event and 999 that take none, beside the same tenant with
//! the one webhook alone. The 999 either subscribe to another event type
//! (no filters: the index passes them over), or to this type with filters
//! on `data` only (each evaluated on every event: the worst case), or with a
//! label filter naming one affiliate and a `data` filter (the index finds
//! the one for the event's affiliate, whose `data` filter then fails). Every
//! event must make exactly one delivery; publish events/s and the server's
//! CPU per event say what the filters cost.

use serde_json::{Value, json};

use super::{Ctx, Env, throughput};
use crate::{
    api::{EVENT_TYPE, WebhookSpec},
    report::Section,
};

/// Webhooks beside the one that delivers.
pub const OTHERS: u32 = 999;
/// Affiliates the events' `affiliateId` label cycles over.
const AFFILIATES: u64 = 1_000;

#[derive(Clone, Copy)]
enum Others {
    None,
    OtherType,
    DataFilters,
    LabelAndDataFilters,
}

impl Others {
    fn case(self) -> &'static str {
        match self {
            Self::None => "1 webhook",
            Self::OtherType => "+999 other type",
            Self::DataFilters => "+999 data filters",
            Self::LabelAndDataFilters => "+999 label+data",
        }
    }

    /// The `n`-th other webhook's fields: none of them matches an event.
    fn fields(self, n: u32) -> Option<Value> {
        // Events carry offerId "offer-42" and currency "EUR".
        let data = json!({ "all": [
            { "field": "offerId", "equals": format!("offer-{}", 1_000 + n) },
            { "field": "currency", "in": ["USD", "GBP"] },
            { "not": { "field": "conversionId", "exists": false } },
        ] });
        match self {
            Self::None => None,
            Self::OtherType => Some(json!({ "eventTypes": ["offer.created"] })),
            Self::DataFilters => Some(json!({ "eventTypes": [EVENT_TYPE], "dataFilter": data })),
            Self::LabelAndDataFilters => Some(json!({
                "eventTypes": [EVENT_TYPE],
                "labelFilter": { "affiliateId": [format!("aff-{n}")] },
                "dataFilter": { "field": "currency", "equals": "USD" },
            })),
        }
    }
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Section> {
    let mut section = Section::new("filters", ctx.params(crate::Scenario::Filters));
    let mut table = throughput::table("publishing beside 999 webhooks that take none of it");
    for others in [
        Others::None,
        Others::OtherType,
        Others::DataFilters,
        Others::LabelAndDataFilters,
    ] {
        let case = others.case();
        eprintln!("[bench]   filters {case}");
        let label = format!("filters-{}", case.replace(['+', ' '], ""));
        let mut env = Env::start(ctx, &label).await?;
        env.api
            .create_webhook(&WebhookSpec::healthy(
                "bench delivering",
                vec![env.receiver.url(0)],
            ))
            .await?;
        if let Some(count) = others.fields(0).map(|_| OTHERS) {
            for n in 0..count {
                let spec = WebhookSpec {
                    extra: others.fields(n),
                    ..WebhookSpec::healthy(
                        &format!("bench filtered {n}"),
                        vec![env.receiver.url(1)],
                    )
                };
                env.api.create_webhook(&spec).await?;
            }
        }
        env.api = env.api.with_keys(AFFILIATES);
        let load = throughput::Load::batched(ctx, ctx.sizes.events, vec![0], 1);
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
        "every event must make exactly one delivery (to the one webhook that takes all); \
         the cost table's CPU per event, beside `1 webhook`, is what matching against the \
         other 999 costs: by type alone, by a data filter on each, or by a label value first",
    );
    Ok(section)
}
