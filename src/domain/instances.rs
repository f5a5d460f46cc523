//! Instance heartbeats. Every instance registers itself and beats; any
//! instance that finds another's heartbeat stale hands that instance's
//! claims back to the queue, so a killed instance's deliveries resume within
//! seconds rather than at the end of their lease. Each beat also counts the
//! other live instances ([`Peers`]): news for other instances is not sent
//! when there are none.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use entity::instance;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QuerySelect, sea_query::Expr,
};

use crate::{domain::queue, ids::InstanceId, reconnect::Reconnect, time::now_ms};

/// How many other instances were alive at the last beat. Until the first
/// count it assumes some are, so nothing is skipped before it knows.
#[derive(Clone)]
pub struct Peers(Arc<AtomicUsize>);

impl Default for Peers {
    fn default() -> Self {
        Self(Arc::new(AtomicUsize::new(usize::MAX)))
    }
}

impl Peers {
    /// No other instance was alive at the last beat.
    pub fn alone(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 0
    }

    /// Another instance spoke up (it said hello when it started listening,
    /// or sent news): not alone, even before the next beat counts it.
    pub fn heard_from_another(&self) {
        self.0.fetch_max(1, Ordering::Relaxed);
    }

    fn set(&self, others: usize) {
        self.0.store(others, Ordering::Relaxed);
    }
}

/// This instance's registration and heartbeat, from start to stop.
pub struct Heartbeat {
    db: DatabaseConnection,
    instance: InstanceId,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Heartbeat {
    /// Registers `instance`, counts its peers, and beats at a fifth of
    /// `timeout` until [`Heartbeat::stop`].
    pub async fn start(
        db: DatabaseConnection,
        instance: InstanceId,
        timeout: Duration,
        peers: Peers,
    ) -> Result<Self, DbErr> {
        register(&db, &instance).await?;
        peers.set(others_alive(&db, &instance, timeout).await?);
        let stop = CancellationToken::new();
        let task = tokio::spawn(beat_until(
            db.clone(),
            instance.clone(),
            timeout,
            peers,
            stop.clone(),
        ));
        Ok(Self {
            db,
            instance,
            stop,
            task,
        })
    }

    /// Stops beating and deregisters: last, once this instance holds no
    /// claims any more.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        if let Err(err) = deregister(&self.db, &self.instance).await {
            tracing::warn!("could not deregister instance {}: {err}", self.instance);
        }
    }
}

/// Every this many beats, an instance promotes the ordered deliveries that a
/// crash between a commit and its promotion left parked (`queue`).
const SWEEP_EVERY_BEATS: u64 = 15;

/// Beats, reaps silent instances and counts the live ones, until stopped.
async fn beat_until(
    db: DatabaseConnection,
    instance: InstanceId,
    timeout: Duration,
    peers: Peers,
    stop: CancellationToken,
) {
    // Beats keep their pace while the database is down; the outage is
    // logged once, and once when it ends.
    let mut outage = Reconnect::new("the instance heartbeat");
    let mut ticker = tokio::time::interval(timeout / 5);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return,
        }
        ticks += 1;
        let beat = async {
            beat(&db, &instance).await?;
            reap(&db, &instance, timeout).await?;
            if ticks.is_multiple_of(SWEEP_EVERY_BEATS) {
                let promoted = queue::promote_stranded(&db, None, now_ms()).await?;
                if promoted > 0 {
                    tracing::warn!(
                        promoted,
                        "promoted ordered deliveries a crash had left parked"
                    );
                }
            }
            others_alive(&db, &instance, timeout).await
        };
        match beat.await {
            Ok(others) => {
                peers.set(others);
                outage.succeeded();
            }
            Err(err) => outage.note_failure(err),
        }
    }
}

/// Instances other than `me` that beat within `timeout`.
async fn others_alive(
    db: &DatabaseConnection,
    me: &InstanceId,
    timeout: Duration,
) -> Result<usize, DbErr> {
    let cutoff = now_ms() - timeout.as_millis() as i64;
    let count = instance::Entity::find()
        .filter(instance::Column::HeartbeatAt.gte(cutoff))
        .filter(instance::Column::Id.ne(me.as_str()))
        .count(db)
        .await?;
    Ok(count as usize)
}

pub async fn register(db: &DatabaseConnection, id: &InstanceId) -> Result<(), DbErr> {
    let now = now_ms();
    instance::ActiveModel {
        id: Set(id.clone()),
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
pub async fn beat(db: &DatabaseConnection, id: &InstanceId) -> Result<(), DbErr> {
    let updated = instance::Entity::update_many()
        .col_expr(instance::Column::HeartbeatAt, Expr::value(now_ms()))
        .filter(instance::Column::Id.eq(id.as_str()))
        .exec(db)
        .await?
        .rows_affected;
    if updated == 0 {
        tracing::warn!(
            instance = %id,
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
pub async fn reap(
    db: &DatabaseConnection,
    me: &InstanceId,
    timeout: Duration,
) -> Result<u64, DbErr> {
    let now = now_ms();
    let cutoff = now - timeout.as_millis() as i64;
    let dead: Vec<InstanceId> = instance::Entity::find()
        .select_only()
        .column(instance::Column::Id)
        .filter(instance::Column::HeartbeatAt.lt(cutoff))
        .filter(instance::Column::Id.ne(me.as_str()))
        .into_tuple()
        .all(db)
        .await?;
    if dead.is_empty() {
        return Ok(0);
    }
    let released = queue::reap(db, &dead, now).await?;
    instance::Entity::delete_many()
        .filter(instance::Column::Id.is_in(dead.iter().map(InstanceId::as_str)))
        .exec(db)
        .await?;
    tracing::warn!(instances = ?dead, released, "took back the deliveries of instances that stopped");
    Ok(released)
}

pub async fn deregister(db: &DatabaseConnection, id: &InstanceId) -> Result<(), DbErr> {
    instance::Entity::delete_by_id(id.clone()).exec(db).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_assumed_until_counted_and_a_hello_ends_being_alone() {
        let peers = Peers::default();
        assert!(!peers.alone(), "nothing is skipped before the first count");
        peers.set(0);
        assert!(peers.alone());
        peers.heard_from_another();
        assert!(!peers.alone());
        peers.set(3);
        peers.heard_from_another();
        assert!(!peers.alone());
        peers.set(0);
        assert!(peers.alone(), "the next beat's count is the truth");
    }
}
