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
const FRESH_SQLITE: &str = "SELECT t.value ->> 'tenant_id' AS tenant_id FROM jsonb_each($1) AS t \
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

/// Most events a group may hold for SQLite to write it in one trip. Its
/// rows go through JSON there, and SQLite reads a row from JSON several
/// times slower than from bound values (about 15 µs more per row); a
/// hand-off to the connection's thread costs about as much as one row. A
/// group of an event or two (a moderate load) saves its six hand-offs; a
/// larger group (a saturating load, where the hand-offs are shared by many
/// rows anyway) goes the transactional way.
const SQLITE_MOST_EVENTS: usize = 2;

/// Most JSON rows SQLite reads for one trip ([`fits_one_trip`]): about the
/// six hand-offs it saves. An event to one endpoint is three; to five,
/// eleven, which goes the transactional way.
const SQLITE_MOST_ROWS: usize = 6;

/// How many leading submissions of `group` may be written by one
/// statement, judged before their rows are staged (on SQLite, none of a
/// group of more than [`SQLITE_MOST_EVENTS`] events): those without
/// idempotency keys whose tenant's submissions before them were checked
/// against the same configuration version. How many of them fit one
/// statement is known once staged ([`weight`], [`fits_one_trip`]).
pub(super) fn suited(db: &DatabaseConnection, group: &[Checked]) -> usize {
    if db.get_database_backend() == DbBackend::Sqlite
        && group.iter().map(|c| c.items.len()).sum::<usize>() > SQLITE_MOST_EVENTS
    {
        return 0;
    }
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

/// Whether staged `rows` may be written in one trip: always on PostgreSQL;
/// on SQLite when their JSON rows, read once for an event and twice for a
/// delivery (its row and its queue row), are at most [`SQLITE_MOST_ROWS`].
pub(super) fn fits_one_trip(db: &DatabaseConnection, rows: &Rows) -> bool {
    db.get_database_backend() != DbBackend::Sqlite
        || rows.events.len() + 2 * rows.deliveries.len() <= SQLITE_MOST_ROWS
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

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database, Statement};

    use super::*;

    /// A migrated SQLite database (in `dir`) with two tenants, each a
    /// webhook and an endpoint: `acme` at configuration version 3, `moved`
    /// at 9.
    async fn two_tenants(dir: &std::path::Path) -> sea_orm::DatabaseConnection {
        let url = format!("sqlite://{}?mode=rwc", dir.join("p.db").display());
        crate::db::migrate(&url).await.expect("migrate");
        let db = Database::connect(&url).await.expect("connect");
        db.execute_unprepared(
            "INSERT INTO tenant_versions (tenant_id, version) VALUES ('acme', 3), ('moved', 9); \
             INSERT INTO webhooks (id, tenant_id, name, description, status, event_types, \
               created_by, secret, max_attempts, initial_interval_ms, max_interval_ms, \
               timeout_ms, created_at, updated_at) \
             VALUES ('wh_a', 'acme', 'w', '', 'ACTIVE', '[]', 'x', 's', 5, 1000, 60000, 5000, 0, 0), \
                    ('wh_m', 'moved', 'w', '', 'ACTIVE', '[]', 'x', 's', 5, 1000, 60000, 5000, 0, 0); \
             INSERT INTO endpoints (id, webhook_id, tenant_id, url, headers, position, created_at) \
             VALUES ('ep_a', 'wh_a', 'acme', 'http://127.0.0.1:9/', '{}', 0, 0), \
                    ('ep_m', 'wh_m', 'moved', 'http://127.0.0.1:9/', '{}', 0, 0);",
        )
        .await
        .expect("fixtures");
        db
    }

    /// SQLite: the script writes the events and deliveries of the tenants
    /// whose configuration version still holds, numbers them with the next
    /// commit position, queues the deliveries, and names those tenants; a
    /// tenant whose version moved gets nothing written.
    #[tokio::test]
    async fn sqlite_writes_only_the_tenants_whose_configuration_held() {
        let dir = tempfile::tempdir().expect("a directory");
        let db = two_tenants(dir.path()).await;
        let event = |id: &str, tenant: &str| {
            serde_json::json!({
                "id": id, "tenant_id": tenant, "event_type": "offer.created", "occurred_at": 5,
                "body": "{\"n\": 1.50}", "labels": {"affiliateId": "a-1"}, "created_at": 5,
                "trace_context": null,
            })
        };
        let delivery = |id: &str, tenant: &str, event: &str, suffix: &str| {
            serde_json::json!({
                "id": id, "tenant_id": tenant, "event_id": event,
                "webhook_id": format!("wh_{suffix}"), "endpoint_id": format!("ep_{suffix}"),
                "status": "PENDING", "attempt_count": 0, "next_attempt_at": 5, "due_at": 900,
                "claim_token": 4, "claimed_by": "me", "created_at": 5, "updated_at": 5,
                "ordering_key": null,
            })
        };
        let values: Vec<Value> = vec![
            r#"[{"tenant_id":"acme","version":3},{"tenant_id":"moved","version":8}]"#.into(),
            serde_json::json!([event("evt_a", "acme"), event("evt_m", "moved")])
                .to_string()
                .into(),
            serde_json::json!([
                delivery("dlv_a", "acme", "evt_a", "a"),
                delivery("dlv_m", "moved", "evt_m", "m"),
            ])
            .to_string()
            .into(),
        ];
        let fresh = script::transaction(&db, &SQLITE, values)
            .await
            .expect("written");
        let fresh: Vec<String> = fresh
            .iter()
            .map(|row| row.try_get("", "tenant_id").expect("a tenant"))
            .collect();
        assert_eq!(fresh, ["acme"]);
        let one = |sql: &'static str| {
            let db = db.clone();
            async move {
                db.query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
                    .await
                    .expect("read")
                    .expect("a row")
                    .try_get_by_index::<String>(0)
                    .expect("text")
            }
        };
        assert_eq!(
            one(
                "SELECT group_concat(id || ' ' || body || ' ' || labels || ' ' || commit_seq) \
                 FROM events"
            )
            .await,
            r#"evt_a {"n": 1.50} {"affiliateId":"a-1"} 1"#,
            "the body kept byte for byte, the next commit position"
        );
        assert_eq!(
            one(
                "SELECT group_concat(id || ' ' || status || ' ' || next_attempt_at) FROM deliveries"
            )
            .await,
            "dlv_a PENDING 5"
        );
        assert_eq!(
            one("SELECT group_concat(id || ' ' || due_at || ' ' || claim_token || ' ' || claimed_by) \
                 FROM delivery_queue")
            .await,
            "dlv_a 900 4 me",
            "queued held by its claim"
        );
    }
}
