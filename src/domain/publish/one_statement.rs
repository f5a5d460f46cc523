//! A group commit written by ONE statement (PostgreSQL) or one trip
//! (SQLite).
//!
//! At a moderate load most group commits carry one event or a few. Written
//! the transactional way, each costs five statements and five round trips:
//! BEGIN, the tenant's configuration version, the events' INSERT, the
//! deliveries' INSERT, COMMIT. A statement is a transaction of its own, so
//! when nothing in a group must be read first (no idempotency keys), one
//! statement writes as many of its submissions as fit in
//! `db::STATEMENT_BYTES` (a bigger group takes several): a CTE compares each tenant's
//! configuration version with the one its submissions were checked against,
//! and inserts the events and deliveries of the tenants whose version still
//! holds. It answers with those tenants; the others' submissions go the
//! transactional way, which reads their configuration again. The statement
//! text never changes, so the connection keeps it prepared.
//!
//! On SQLite the same writes are statements of one text run as a
//! transaction in one hand-off to the connection's thread (`db::script`):
//! at 500 single publishes a second, each of the transactional way's seven
//! statements woke that thread and then the runtime's.

use std::{
    collections::{HashMap, HashSet},
    sync::LazyLock,
};

use sea_orm::{DatabaseConnection, DbBackend, Value};

use super::{
    WriteError, classify,
    insert::{events_json, insert_events_json, insert_events_sqlite},
    rows::{Rows, Staged},
};
use crate::{
    db::{Kept, script, statement},
    domain::{publish_check::Checked, queue},
};

/// What one delivery row weighs in the statement's JSON.
const DELIVERY_JSON_BYTES: usize = 2 * queue::DELIVERY_ROW_BYTES;
/// What one event row weighs in the statement's JSON besides its body.
const EVENT_JSON_BYTES: usize = 256;

static SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH fresh AS (\
           SELECT t.tenant_id FROM json_to_recordset($1::json) AS t(tenant_id text, version bigint) \
           WHERE COALESCE((SELECT v.version FROM tenant_versions v \
                           WHERE v.tenant_id = t.tenant_id), 0) = t.version), \
         new_events AS ({}), \
         {} \
         SELECT tenant_id FROM fresh",
        insert_events_json(2, "e.tenant_id IN (SELECT tenant_id FROM fresh)"),
        queue::enqueue_json(3, "d.tenant_id IN (SELECT tenant_id FROM fresh)"),
    )
});

/// The tenants among the JSON array `$1` of `{tenant_id, version}` whose
/// configuration version is still the one their submissions were checked
/// against (SQLite).
const FRESH_SQLITE: &str = "SELECT t.value ->> 'tenant_id' AS tenant_id FROM json_each($1) AS t \
     WHERE COALESCE((SELECT v.version FROM tenant_versions v \
                     WHERE v.tenant_id = t.value ->> 'tenant_id'), 0) = t.value ->> 'version'";

/// SQLite has no statement that writes several tables; the same writes as
/// one transaction in one text, one trip to its connection's thread
/// (`db::script`). The write lock is taken first (`BEGIN IMMEDIATE`), so
/// the versions read are those the rows commit under.
static SQLITE: LazyLock<String> = LazyLock::new(|| {
    let keep = |tenant: &str| format!("{tenant} IN ({FRESH_SQLITE})");
    format!(
        "{} {} {FRESH_SQLITE};",
        insert_events_sqlite(2, &keep("e.value ->> 'tenant_id'")),
        queue::enqueue_sqlite(3, &keep("d.value ->> 'tenant_id'")),
    )
});

/// How many leading submissions of `group` may be written by one
/// statement, judged before their rows are staged: those without idempotency keys whose tenant's submissions before them were
/// checked against the same configuration version. How many of them fit
/// one statement is known once staged ([`weight`]).
pub(super) fn suited(group: &[Checked]) -> usize {
    let mut versions: HashMap<&str, i64> = HashMap::new();
    group
        .iter()
        .take_while(|checked| {
            let version = *versions
                .entry(checked.tenant.as_str())
                .or_insert(checked.config.version);
            version == checked.config.version
                && checked
                    .items
                    .iter()
                    .all(|item| item.model.idempotency_key.is_none())
        })
        .count()
}

/// What a staged submission's rows weigh in the statement, counted against
/// `db::STATEMENT_BYTES`.
pub(super) fn weight(staged: &Staged) -> usize {
    let events: usize = staged
        .events
        .iter()
        .map(|e| e.body.len() + EVENT_JSON_BYTES)
        .sum();
    events + staged.deliveries.len() * DELIVERY_JSON_BYTES
}

/// Writes `rows` (staged from `group`) in one statement; answers the
/// tenants whose rows it wrote (those whose configuration had not moved).
/// A refused statement wrote nothing.
pub(super) async fn write(
    db: &DatabaseConnection,
    kept: &Kept,
    group: &[Checked],
    rows: &Rows,
    holding: Option<&queue::Holding<'_>>,
) -> Result<HashSet<String>, WriteError> {
    #[derive(serde::Serialize)]
    struct Version<'a> {
        tenant_id: &'a str,
        version: i64,
    }
    let mut seen = HashSet::new();
    let versions: Vec<Version<'_>> = group
        .iter()
        .filter(|checked| seen.insert(checked.tenant.as_str()))
        .map(|checked| Version {
            tenant_id: &checked.tenant,
            version: checked.config.version,
        })
        .collect();
    let to_db = |err: serde_json::Error| sea_orm::DbErr::Custom(err.to_string());
    let values: Vec<Value> = vec![
        serde_json::to_string(&versions).map_err(to_db)?.into(),
        events_json(&rows.events)?.into(),
        queue::enqueue_json_rows(&rows.deliveries, holding)?.into(),
    ];
    let fresh = match db.get_database_backend() {
        DbBackend::Sqlite => script::transaction(db, &SQLITE, values).await,
        _ => {
            kept.query_all(db, statement(DbBackend::Postgres, &SQL, values))
                .await
        }
    }
    .map_err(classify)?;
    fresh
        .iter()
        .map(|row| row.try_get::<String>("", "tenant_id"))
        .collect::<Result<_, _>>()
        .map_err(WriteError::from)
}
