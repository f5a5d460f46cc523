//! Forgetting old history: events older than the retention period go, with
//! their deliveries and attempts (foreign keys cascade), a small batch at a
//! time so the worker and the API never wait long for the database. Events
//! with a delivery still open stay until it settles. Recovery jobs that
//! finished before the cutoff go too.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Value};

use super::queue::OPEN_SQL;
use crate::{db::statement, time::now_ms};

/// Events deleted per statement; each takes its deliveries and attempts along.
const BATCH: i64 = 200;
/// Pause between batches, so other work gets the database in between.
const PAUSE: Duration = Duration::from_millis(50);

/// Deletes expired events in batches until none is left; returns how many.
pub async fn purge(db: &DatabaseConnection, retention: Duration) -> Result<u64, DbErr> {
    let cutoff = now_ms() - retention.as_millis() as i64;
    let mut total = 0;
    loop {
        let sql = format!(
            "DELETE FROM events WHERE id IN ( \
             SELECT e.id FROM events e WHERE e.created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.{OPEN_SQL}) \
             ORDER BY e.created_at LIMIT $2)"
        );
        let values: Vec<Value> = vec![cutoff.into(), BATCH.into()];
        let deleted = db
            .execute_raw(statement(db.get_database_backend(), &sql, values))
            .await?
            .rows_affected();
        total += deleted;
        if deleted < BATCH as u64 {
            let sql = "DELETE FROM recovery_jobs WHERE finished_at < $1";
            db.execute_raw(statement(
                db.get_database_backend(),
                sql,
                vec![cutoff.into()],
            ))
            .await?;
            return Ok(total);
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// How often to look for expired history: a tenth of the retention period,
/// between a second and ten minutes.
pub fn sweep_interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600))
}
