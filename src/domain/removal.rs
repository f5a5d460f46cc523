//! Removing a webhook or some of its endpoints takes everything delivered to
//! them along: deliveries, their queue rows and attempts.
//!
//! On PostgreSQL no foreign key ties a delivery to its webhook or endpoint
//! (a key's check locks the row it names, and every publish would lock the
//! same few rows: see the migration that dropped them). So the removing
//! transaction deletes those rows itself ([`forget`]), and a publish that
//! read the configuration before the removal committed, and commits after
//! it, could still leave a delivery behind. [`sweep_later`] closes that gap:
//! once the removal has committed, a task waits for every transaction that
//! was running then to end, and deletes what they left. A publish that
//! starts after the commit adds none: it checks its tenant's configuration version, which the
//! removal moved, in the transaction (or the one statement) that inserts;
//! resends, replays and test pings, which read their webhook before their
//! transaction, keep only the deliveries whose endpoint it still finds
//! ([`keep_existing`]). What still slips through (its instance stopped
//! before the sweep) is deleted by the worker that claims it, unsent
//! (`delivery::details`). A racing publish's deliveries that its own
//! instance took at their commit are sent once, as they would have been had
//! the publish come a moment earlier; the sweep deletes them afterwards.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use entity::delivery;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, TransactionTrait, Value};

use crate::{
    db::{placeholders, returned_ids, statement},
    ids::WebhookId,
};

/// How long a sweep waits for transactions older than the removal: a
/// publish racing it has long committed by then, whatever else (a backup's
/// transaction) still runs.
const SWEEP_WAIT: Duration = Duration::from_secs(60);
/// How soon it looks again, first: each look waits twice as long as the
/// last, up to [`SWEEP_POLL_MAX`] (a publish ends within milliseconds; a
/// long transaction is not worth asking about 200 times a second).
const SWEEP_POLL: Duration = Duration::from_millis(5);
const SWEEP_POLL_MAX: Duration = Duration::from_millis(500);

/// What a change removed.
#[derive(Clone, Debug)]
pub enum Removed {
    Webhook(WebhookId),
    /// Endpoint ids (of one webhook).
    Endpoints(Vec<String>),
}

impl Removed {
    /// The condition on `deliveries` or `delivery_queue` that picks its
    /// rows, with its values from `$1`.
    fn condition(&self) -> (String, Vec<Value>) {
        match self {
            Removed::Webhook(id) => ("webhook_id = $1".to_owned(), vec![id.as_str().into()]),
            Removed::Endpoints(ids) => (
                format!("endpoint_id IN ({})", placeholders(1, ids.len())),
                ids.iter().map(|id| id.as_str().into()).collect(),
            ),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Removed::Endpoints(ids) if ids.is_empty())
    }
}

/// Deletes the attempts, queue rows and deliveries of what `removed` names,
/// inside the caller's transaction: the removing one (on SQLite the keys'
/// cascades would too), or [`forget_now`]'s.
pub async fn forget<C: ConnectionTrait>(db: &C, removed: &Removed) -> Result<(), DbErr> {
    if removed.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let (condition, values) = removed.condition();
    for sql in [
        format!(
            "DELETE FROM delivery_attempts WHERE delivery_id IN \
             (SELECT id FROM deliveries WHERE {condition})"
        ),
        format!("DELETE FROM delivery_queue WHERE {condition}"),
        format!("DELETE FROM deliveries WHERE {condition}"),
    ] {
        db.execute_raw(statement(backend, &sql, values.clone()))
            .await?;
    }
    Ok(())
}

/// The deliveries of `deliveries` whose endpoint still exists, read inside
/// the transaction `db` that will insert them: for resends, replays and
/// test pings, which read their webhook before that transaction. A removal
/// committed before this read is seen here; one that commits after it
/// waits, in its sweep, for this transaction to end.
pub async fn keep_existing<C: ConnectionTrait>(
    db: &C,
    deliveries: Vec<delivery::Model>,
) -> Result<Vec<delivery::Model>, DbErr> {
    let endpoints: HashSet<&str> = deliveries.iter().map(|d| d.endpoint_id.as_str()).collect();
    if endpoints.is_empty() {
        return Ok(deliveries);
    }
    let sql = format!(
        "SELECT id FROM endpoints WHERE id IN ({})",
        placeholders(1, endpoints.len())
    );
    let values = endpoints.iter().map(|id| (*id).into()).collect();
    let existing: HashSet<String> =
        returned_ids(db, statement(db.get_database_backend(), &sql, values))
            .await?
            .into_iter()
            .collect();
    Ok(deliveries
        .into_iter()
        .filter(|d| existing.contains(d.endpoint_id.as_str()))
        .collect())
}

/// On PostgreSQL, once the removing transaction has committed: starts a
/// task that waits (up to a minute) until no transaction that was running
/// at the commit still runs, then [`forget`]s `removed` again. The change's
/// answer does not wait for it.
pub fn sweep_later(db: &DatabaseConnection, removed: Removed) {
    if db.get_database_backend() != DbBackend::Postgres || removed.is_empty() {
        return;
    }
    let db = db.clone();
    tokio::spawn(async move {
        if let Err(err) = sweep(&db, &removed).await {
            tracing::warn!(
                ?removed,
                "could not sweep after a removal (a delivery left behind is deleted when claimed): {err}"
            );
        }
    });
}

/// [`sweep_later`]'s work. Hookline's connections all log in as one role,
/// so `pg_stat_activity` shows it their transactions' start.
async fn sweep(db: &DatabaseConnection, removed: &Removed) -> Result<(), DbErr> {
    let backend = DbBackend::Postgres;
    let since: String = db
        .query_one_raw(statement(
            backend,
            "SELECT clock_timestamp()::text AS t",
            vec![],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no time from the database".into()))?
        .try_get("", "t")?;
    let older = "SELECT count(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND backend_type = 'client backend' \
                   AND pid <> pg_backend_pid() AND xact_start < $1::timestamptz";
    let deadline = Instant::now() + SWEEP_WAIT;
    let mut poll = SWEEP_POLL;
    loop {
        let running: i64 = db
            .query_one_raw(statement(backend, older, vec![since.clone().into()]))
            .await?
            .map(|row| row.try_get("", "n"))
            .transpose()?
            .unwrap_or(0);
        if running == 0 {
            break;
        }
        if Instant::now() >= deadline {
            tracing::info!(
                ?removed,
                "{running} transactions older than a removal still run after {SWEEP_WAIT:?}: \
                 sweeping without them"
            );
            break;
        }
        tokio::time::sleep(poll).await;
        poll = (poll * 2).min(SWEEP_POLL_MAX);
    }
    forget_now(db, removed).await
}

/// [`forget`] in a transaction of its own, run again if it deadlocks with
/// the recorder (which locks the same rows in another order).
pub async fn forget_now(db: &DatabaseConnection, removed: &Removed) -> Result<(), DbErr> {
    crate::db::retry_conflicts(|| async {
        let txn = db.begin().await?;
        forget(&txn, removed).await?;
        txn.commit().await
    })
    .await
}
