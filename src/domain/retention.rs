//! Forgetting old history: events older than the retention period go, with
//! their deliveries and attempts. On PostgreSQL whole weeks go at once, by
//! dropping their partitions (`partitions`); what is left (SQLite, a week an
//! open delivery still needs, the default partition) goes a small batch at a
//! time so the worker and the API never wait long for the database. Events
//! with a delivery still open stay until it settles. Recovery jobs that
//! finished before the cutoff go too, and idempotency keys past their window.

mod partitions;

use std::time::Duration;

pub use partitions::make_ahead;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Value};

use super::publish::IDEMPOTENCY_WINDOW_MS;
use crate::{db::statement, time::now_ms};

/// Events deleted per statement, with their deliveries and attempts.
const BATCH: i64 = 200;
/// Pause between batches, so other work gets the database in between.
const PAUSE: Duration = Duration::from_millis(50);

/// What one purge forgot.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Weeks of history dropped whole (PostgreSQL).
    pub weeks: usize,
    /// Events deleted one by one.
    pub events: u64,
}

/// Forgets expired history until none is left.
pub async fn purge(db: &DatabaseConnection, retention: Duration) -> Result<Purged, DbErr> {
    let cutoff = now_ms() - retention.as_millis() as i64;
    let backend = db.get_database_backend();
    let mut purged = Purged::default();
    if backend == DbBackend::Postgres {
        purged.weeks = partitions::drop_expired(db, cutoff).await?;
    }
    let select = "SELECT e.id FROM events e WHERE e.created_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM deliveries d JOIN delivery_queue q ON q.id = d.id \
             WHERE d.event_id = e.id) \
         ORDER BY e.created_at LIMIT $2";
    // SQLite's foreign keys cascade; PostgreSQL's partitions have none.
    let sql = match backend {
        DbBackend::Postgres => format!(
            "WITH gone AS (DELETE FROM events WHERE id IN ({select}) RETURNING id), \
             dropped AS (DELETE FROM deliveries WHERE event_id IN (SELECT id FROM gone) \
             RETURNING id), \
             attempts AS (DELETE FROM delivery_attempts \
             WHERE delivery_id IN (SELECT id FROM dropped)) \
             SELECT count(*) AS n FROM gone"
        ),
        _ => format!("DELETE FROM events WHERE id IN ({select}) RETURNING 1 AS n"),
    };
    loop {
        let values: Vec<Value> = vec![cutoff.into(), BATCH.into()];
        let rows = db.query_all_raw(statement(backend, &sql, values)).await?;
        let deleted = match backend {
            DbBackend::Postgres => {
                rows.first().map_or(Ok(0), |r| r.try_get::<i64>("", "n"))? as u64
            }
            _ => rows.len() as u64,
        };
        purged.events += deleted;
        if deleted < BATCH as u64 {
            break;
        }
        tokio::time::sleep(PAUSE).await;
    }
    let sql = "DELETE FROM recovery_jobs WHERE finished_at < $1";
    db.execute_raw(statement(backend, sql, vec![cutoff.into()]))
        .await?;
    forget_keys(db, now_ms() - IDEMPOTENCY_WINDOW_MS).await?;
    Ok(purged)
}

/// Idempotency keys older than `before`, a batch at a time.
async fn forget_keys(db: &DatabaseConnection, before: i64) -> Result<(), DbErr> {
    const KEYS: i64 = 1000;
    let sql = "DELETE FROM event_keys WHERE (tenant_id, idempotency_key) IN \
               (SELECT tenant_id, idempotency_key FROM event_keys WHERE created_at < $1 LIMIT $2)";
    loop {
        let values: Vec<Value> = vec![before.into(), KEYS.into()];
        let done = db
            .execute_raw(statement(db.get_database_backend(), sql, values))
            .await?
            .rows_affected();
        if done < KEYS as u64 {
            return Ok(());
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// How often to look for expired history: a tenth of the retention period,
/// between a second and ten minutes.
pub fn sweep_interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600))
}
