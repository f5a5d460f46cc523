//! The deliveries table as a queue: claiming due rows under a lease, and
//! handing rows back.
//!
//! A claim moves `next_attempt_at` to the end of the lease and stamps a claim
//! token, in one statement: PostgreSQL skips rows other instances hold
//! (`FOR UPDATE SKIP LOCKED`); SQLite has a single writer, so its
//! `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING` is atomic as it is. If
//! the instance dies, the rows fall due again when the lease runs out.

use std::collections::HashMap;

use entity::{delivery, endpoint, event, webhook};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QuerySelect, Statement, Value,
};

use crate::{db::statement, domain::deliveries::unclaimed};

/// A claimed delivery, before its details are loaded.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: String,
    pub tenant_id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub endpoint_id: String,
    pub attempt_count: i32,
}

/// What a claim writes on the rows it takes.
pub struct ClaimStamp<'a> {
    pub now: i64,
    /// End of the lease: the rows fall due again then, whatever happens.
    pub lease_until: i64,
    pub token: i64,
    pub instance: &'a str,
}

/// Claims up to `limit` due deliveries, skipping the `busy` endpoints.
pub async fn claim(
    db: &DatabaseConnection,
    limit: u64,
    busy: &[String],
    claim: &ClaimStamp<'_>,
) -> Result<Vec<Claimed>, DbErr> {
    let backend = db.get_database_backend();
    let mut values: Vec<Value> = vec![
        claim.lease_until.into(),
        claim.token.into(),
        claim.now.into(),
        (limit as i64).into(),
        claim.instance.into(),
    ];
    let excluded = if busy.is_empty() {
        String::new()
    } else {
        let first = values.len() + 1;
        values.extend(busy.iter().map(|id| Value::from(id.as_str())));
        let placeholders: Vec<String> = (first..first + busy.len())
            .map(|n| format!("${n}"))
            .collect();
        format!(" AND endpoint_id NOT IN ({})", placeholders.join(", "))
    };
    let lock = if backend == DbBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE deliveries SET next_attempt_at = $1, claim_token = $2, updated_at = $3, claimed_by = $5 \
         WHERE id IN (SELECT id FROM deliveries \
             WHERE status IN ('PENDING', 'RETRYING') AND next_attempt_at <= $3{excluded} \
             ORDER BY next_attempt_at LIMIT $4{lock}) \
         RETURNING id, tenant_id, event_id, webhook_id, endpoint_id, attempt_count"
    );
    let rows = db.query_all_raw(statement(backend, &sql, values)).await?;
    rows.iter()
        .map(|row| {
            Ok(Claimed {
                id: row.try_get("", "id")?,
                tenant_id: row.try_get("", "tenant_id")?,
                event_id: row.try_get("", "event_id")?,
                webhook_id: row.try_get("", "webhook_id")?,
                endpoint_id: row.try_get("", "endpoint_id")?,
                attempt_count: row.try_get("", "attempt_count")?,
            })
        })
        .collect()
}

/// When the next open delivery falls due (epoch ms), if any is open.
pub async fn next_due(db: &DatabaseConnection) -> Result<Option<i64>, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT MIN(next_attempt_at) AS due FROM deliveries WHERE status IN ('PENDING', 'RETRYING')",
        ))
        .await?;
    Ok(row.and_then(|r| r.try_get::<Option<i64>>("", "due").ok().flatten()))
}

/// Hands claimed deliveries back: due again at `now`, no claim.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    rows: &[(String, i64)],
    now: i64,
) -> Result<(), DbErr> {
    let mut by_token: HashMap<i64, Vec<&str>> = HashMap::new();
    for (id, token) in rows {
        by_token.entry(*token).or_default().push(id);
    }
    for (token, ids) in by_token {
        unclaimed(Some(now), now)
            .filter(delivery::Column::Id.is_in(ids))
            .filter(delivery::Column::ClaimToken.eq(token))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// What claimed deliveries need to be attempted.
pub struct Details {
    /// event id -> (type, body, traceparent)
    pub events: HashMap<String, (String, String, Option<String>)>,
    pub webhooks: HashMap<String, webhook::Model>,
    pub endpoints: HashMap<String, endpoint::Model>,
}

pub async fn load_details(db: &DatabaseConnection, claimed: &[Claimed]) -> Result<Details, DbErr> {
    let event_ids = unique(claimed.iter().map(|c| c.event_id.as_str()));
    let webhook_ids = unique(claimed.iter().map(|c| c.webhook_id.as_str()));
    let endpoint_ids = unique(claimed.iter().map(|c| c.endpoint_id.as_str()));
    let events = event::Entity::find()
        .select_only()
        .columns([
            event::Column::Id,
            event::Column::EventType,
            event::Column::Body,
            event::Column::TraceContext,
        ])
        .filter(event::Column::Id.is_in(event_ids))
        .into_tuple::<(String, String, String, Option<String>)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, kind, body, trace)| (id, (kind, body, trace)))
        .collect();
    let webhooks = webhook::Entity::find()
        .filter(webhook::Column::Id.is_in(webhook_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|w| (w.id.clone(), w))
        .collect();
    let endpoints = endpoint::Entity::find()
        .filter(endpoint::Column::Id.is_in(endpoint_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    Ok(Details {
        events,
        webhooks,
        endpoints,
    })
}

fn unique<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut ids: Vec<&str> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}
