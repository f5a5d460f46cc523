//! Instance heartbeats. Every worker registers itself and beats; any worker
//! that finds another's heartbeat stale hands that instance's claims back to
//! the queue, so a killed instance's deliveries resume within seconds rather
//! than at the end of their lease.

use std::time::Duration;

use entity::instance;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QuerySelect, sea_query::Expr,
};

use crate::{domain::queue, time::now_ms};

pub async fn register(db: &DatabaseConnection, id: &str) -> Result<(), DbErr> {
    let now = now_ms();
    instance::ActiveModel {
        id: Set(id.to_owned()),
        host: Set(hostname()),
        started_at: Set(now),
        heartbeat_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Records that this instance is alive. If another instance took it for dead
/// meanwhile (its heartbeats could not reach the database), it registers
/// again; the claims it held may have been handed out already, which costs
/// at most a duplicate delivery.
pub async fn beat(db: &DatabaseConnection, id: &str) -> Result<(), DbErr> {
    let updated = instance::Entity::update_many()
        .col_expr(instance::Column::HeartbeatAt, Expr::value(now_ms()))
        .filter(instance::Column::Id.eq(id))
        .exec(db)
        .await?
        .rows_affected;
    if updated == 0 {
        tracing::warn!(
            instance = id,
            "this instance was taken for dead; registering again"
        );
        register(db, id).await?;
    }
    Ok(())
}

/// Forgets instances silent for longer than `timeout` and hands back the open
/// deliveries they held. Returns how many deliveries were handed back. `me`
/// is never reaped: this runs right after its own successful beat.
///
/// Claims of an instance that vanished any other way run out with their
/// lease.
pub async fn reap(db: &DatabaseConnection, me: &str, timeout: Duration) -> Result<u64, DbErr> {
    let now = now_ms();
    let cutoff = now - timeout.as_millis() as i64;
    let dead: Vec<String> = instance::Entity::find()
        .select_only()
        .column(instance::Column::Id)
        .filter(instance::Column::HeartbeatAt.lt(cutoff))
        .filter(instance::Column::Id.ne(me))
        .into_tuple()
        .all(db)
        .await?;
    if dead.is_empty() {
        return Ok(0);
    }
    let released = queue::reap(db, &dead, now).await?;
    instance::Entity::delete_many()
        .filter(instance::Column::Id.is_in(dead.iter().map(String::as_str)))
        .exec(db)
        .await?;
    tracing::warn!(instances = ?dead, released, "took back the deliveries of instances that stopped");
    Ok(released)
}

pub async fn deregister(db: &DatabaseConnection, id: &str) -> Result<(), DbErr> {
    instance::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
