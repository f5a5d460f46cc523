//! History that scales. Idempotency keys move to a table of their own
//! (`event_keys`, on both databases): a key must be unique per tenant across
//! all of time that matters (24 hours), which a partitioned `events` cannot
//! promise with an index, since a partitioned table's unique indexes must hold
//! its partition key.
//!
//! On PostgreSQL `events`, `deliveries` and `delivery_attempts` then become
//! range-partitioned by id (see [`crate::partitioning`]). The foreign keys
//! between the three go (a partition is dropped whole; retention keeps them
//! consistent); those to webhooks and endpoints stay.
//!
//! A database with history keeps it, untouched, as one partition per table
//! (`<table>_history`, every id below next Monday's first): the old table is
//! renamed, its indexes are renamed and matched by the new parent's, and a
//! bound checked beforehand lets PostgreSQL attach it without reading it
//! again. Nothing is copied. The migration's transaction holds each table's
//! exclusive lock while that check reads the table once (measured: about a
//! second per million deliveries on a 2-core machine), so hookline must be
//! stopped while it runs, as for any migration. An empty database just gets
//! the new tables. Day partitions are hookline's to make, ahead of time.

use sea_orm_migration::{
    prelude::*,
    sea_orm::{ConnectionTrait, DbBackend, Statement},
};

use crate::partitioning::{DAY_MS, SPAN_DAYS, TABLES, id_floor, span_start};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE TABLE event_keys (tenant_id TEXT NOT NULL, idempotency_key TEXT NOT NULL, \
             event_id TEXT NOT NULL, created_at BIGINT NOT NULL, \
             PRIMARY KEY (tenant_id, idempotency_key))",
            "CREATE INDEX event_keys_created_at ON event_keys (created_at)",
            "INSERT INTO event_keys (tenant_id, idempotency_key, event_id, created_at) \
             SELECT tenant_id, idempotency_key, id, created_at FROM events \
             WHERE idempotency_key IS NOT NULL",
            "DROP INDEX events_tenant_idempotency_key",
        ] {
            db.execute_unprepared(sql).await?;
        }
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        for sql in [
            "ALTER TABLE deliveries DROP CONSTRAINT deliveries_event",
            "ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_delivery",
        ] {
            db.execute_unprepared(sql).await?;
        }
        let (keep, now) = history_and_now(db).await?;
        let next_week = (span_start(now / DAY_MS) + SPAN_DAYS) * DAY_MS;
        for (table, prefix) in TABLES {
            partition(db, table, keep.then(|| id_floor(prefix, next_week))).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "partitioned history is not turned back into plain tables".into(),
        ))
    }
}

/// Whether the database holds history, and the server's clock (epoch ms).
async fn history_and_now(db: &SchemaManagerConnection<'_>) -> Result<(bool, i64), DbErr> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM deliveries) AS held, \
             (extract(epoch FROM now()) * 1000)::bigint AS ms",
        ))
        .await?
        .ok_or_else(|| DbErr::Migration("no answer".into()))?;
    Ok((row.try_get("", "held")?, row.try_get("", "ms")?))
}

/// Turns `table` into a partitioned table of the same shape. With `history`
/// (the first id of next week) the old table becomes its partition below that
/// id; without, it is dropped (it was empty).
async fn partition(
    db: &SchemaManagerConnection<'_>,
    table: &str,
    history: Option<String>,
) -> Result<(), DbErr> {
    let old = format!("{table}_history");
    let indexes = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT i.indexname, i.indexdef FROM pg_indexes i \
             WHERE i.tablename = $1 AND i.schemaname = current_schema() \
             AND i.indexname <> $1 || '_pkey' ORDER BY i.indexname",
            [table.into()],
        ))
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get("", "indexname")?, row.try_get("", "indexdef")?)))
        .collect::<Result<Vec<(String, String)>, DbErr>>()?;
    let foreign_keys = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint \
             WHERE conrelid = $1::regclass AND contype = 'f' ORDER BY conname",
            [table.into()],
        ))
        .await?
        .into_iter()
        .map(|row| Ok((row.try_get("", "conname")?, row.try_get("", "def")?)))
        .collect::<Result<Vec<(String, String)>, DbErr>>()?;
    let mut sql = vec![
        format!("ALTER TABLE {table} RENAME TO {old}"),
        format!("ALTER TABLE {old} RENAME CONSTRAINT {table}_pkey TO {old}_pkey"),
    ];
    for (name, _) in &indexes {
        sql.push(format!("ALTER INDEX {name} RENAME TO {name}_history"));
    }
    sql.push(format!(
        "CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING STORAGE \
         INCLUDING COMPRESSION, PRIMARY KEY (id)) PARTITION BY RANGE (id)"
    ));
    // The definitions name the table as it was, which is now the parent.
    sql.extend(indexes.into_iter().map(|(_, def)| def));
    for (name, def) in foreign_keys {
        sql.push(format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def}"));
    }
    match history {
        Some(bound) => sql.extend([
            format!("ALTER TABLE {old} ADD CONSTRAINT {old}_bound CHECK (id < '{bound}') NOT VALID"),
            format!("ALTER TABLE {old} VALIDATE CONSTRAINT {old}_bound"),
            format!("ALTER TABLE {table} ATTACH PARTITION {old} FOR VALUES FROM (MINVALUE) TO ('{bound}')"),
            format!("ALTER TABLE {old} DROP CONSTRAINT {old}_bound"),
        ]),
        None => sql.push(format!("DROP TABLE {old}")),
    }
    sql.push(format!(
        "CREATE TABLE {table}_default PARTITION OF {table} DEFAULT"
    ));
    for statement in sql {
        db.execute_unprepared(&statement).await?;
    }
    Ok(())
}
