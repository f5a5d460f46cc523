//! Whether this instance can do its work right now: what `/readyz` reports.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};

/// Whether the database answers a trivial query within a second.
pub async fn database_answers(db: &DatabaseConnection) -> bool {
    let probe = db.execute_unprepared("SELECT 1");
    matches!(
        tokio::time::timeout(Duration::from_secs(1), probe).await,
        Ok(Ok(_))
    )
}
