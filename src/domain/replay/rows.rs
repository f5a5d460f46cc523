//! What a replay reads of the window's events, on the reading connections.
//! A page lists ids, types, labels and body lengths, never bodies: a
//! delivery needs only the event's id, and most webhooks choose events by
//! type and labels alone. Bodies are read only for a webhook that filters
//! on `data`, those of the events its types and labels let through, at most
//! [`BODY_BYTES`] per query, and each is dropped once it has been checked.

use std::collections::HashSet;

use entity::event;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, Func},
};
use serde_json::Value;

use super::ReplayRequest;
use crate::{
    db::chunks_within,
    domain::{
        labels::{self, Labels},
        patterns::Pattern,
        targets::Target,
    },
    error::AppResult,
    ids::EventId,
};

/// Events listed per query.
pub(super) const PAGE: u64 = 500;
/// Event bodies read per query, in bytes: about the most a replay holds at
/// once (a larger body is read alone). 500 of the largest events would be
/// over 100 MiB.
const BODY_BYTES: usize = 1024 * 1024;

/// An event of the window, as a page lists it.
pub(super) struct Listed {
    pub id: EventId,
    event_type: String,
    labels: Value,
    /// The length of its body in bytes, read without the body.
    body_bytes: i64,
}

/// An event the webhook subscribes to, with what its deliveries need.
pub(super) struct Wanted {
    pub id: EventId,
    pub labels: Labels,
}

/// The next page of the window's events whose type the webhook may want.
pub(super) async fn read_page(
    db: &DatabaseConnection,
    tenant: &str,
    target: &Target,
    request: &ReplayRequest,
    after: Option<&str>,
) -> AppResult<Vec<Listed>> {
    let mut query = event::Entity::find()
        .select_only()
        .columns([
            event::Column::Id,
            event::Column::EventType,
            event::Column::Labels,
        ])
        // Both databases tell the length of a stored text without reading
        // it (SQLite from 3.43 on); the cast makes PostgreSQL's `integer` a
        // `bigint`, as SQLite's integers are.
        .expr_as(
            Func::cast_as(
                Func::cust("octet_length").arg(Expr::col(event::Column::Body)),
                "bigint",
            ),
            "body_bytes",
        )
        .filter(event::Column::TenantId.eq(tenant))
        .filter(event::Column::CreatedAt.gte(request.since))
        .filter(types_condition(&target.patterns));
    if let Some(until) = request.until {
        query = query.filter(event::Column::CreatedAt.lt(until));
    }
    if let Some(after) = after {
        query = query.filter(event::Column::Id.gt(after));
    }
    let rows: Vec<(EventId, String, Value, i64)> = query
        .order_by_asc(event::Column::Id)
        .limit(PAGE)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, event_type, labels, body_bytes)| Listed {
            id,
            event_type,
            labels,
            body_bytes,
        })
        .collect())
}

/// The events of `page` the webhook subscribes to, in the page's order: by
/// type and labels, then, when it filters on `data`, by their bodies.
pub(super) async fn wanted(
    db: &DatabaseConnection,
    tenant: &str,
    target: &Target,
    page: Vec<Listed>,
) -> AppResult<Vec<Wanted>> {
    let labelled: Vec<(Listed, Labels)> = page
        .into_iter()
        .filter_map(|event| {
            let labels = labels::from_json(&event.labels);
            target
                .wants_labelled(&event.event_type, &labels)
                .then_some((event, labels))
        })
        .collect();
    let passed = if target.reads_bodies() {
        Some(passing_bodies(db, tenant, target, &labelled).await?)
    } else {
        None
    };
    Ok(labelled
        .into_iter()
        .filter(|(event, _)| passed.as_ref().is_none_or(|p| p.contains(&event.id)))
        .map(|(event, labels)| Wanted {
            id: event.id,
            labels,
        })
        .collect())
}

/// Which of `events` have a body the webhook's filter on `data` lets
/// through, read at most [`BODY_BYTES`] at a time. An event deleted since
/// it was listed has none.
async fn passing_bodies(
    db: &DatabaseConnection,
    tenant: &str,
    target: &Target,
    events: &[(Listed, Labels)],
) -> AppResult<HashSet<EventId>> {
    let mut passed = HashSet::new();
    let size = |(event, _): &(Listed, Labels)| usize::try_from(event.body_bytes).unwrap_or(0);
    for chunk in chunks_within(events, PAGE as usize, BODY_BYTES, size) {
        let bodies: Vec<(EventId, String)> = event::Entity::find()
            .select_only()
            .columns([event::Column::Id, event::Column::Body])
            .filter(event::Column::TenantId.eq(tenant))
            .filter(event::Column::Id.is_in(chunk.iter().map(|(event, _)| event.id.as_str())))
            .into_tuple()
            .all(db)
            .await?;
        passed.extend(
            bodies
                .into_iter()
                .filter(|(_, body)| target.wants_body(body))
                .map(|(id, _)| id),
        );
    }
    Ok(passed)
}

/// The event types `patterns` select, as a condition on the events table:
/// `offer.*` is the range of names from `offer.` up to `offer/` (`/` sorts
/// right after `.`), so no LIKE escaping and an index can serve it.
fn types_condition(patterns: &[Pattern]) -> Condition {
    let mut any = Condition::any();
    for pattern in patterns {
        any = match pattern {
            Pattern::All => return Condition::all(),
            Pattern::Object(object) => any.add(
                Condition::all()
                    .add(event::Column::EventType.gte(format!("{object}.")))
                    .add(event::Column::EventType.lt(format!("{object}/"))),
            ),
            Pattern::Exact(name) => any.add(event::Column::EventType.eq(name.as_str())),
        };
    }
    any
}
