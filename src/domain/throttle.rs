//! Throttling an endpoint to its `rate_limit_per_second` across every
//! instance, with the database as the one shared clock and counter.
//!
//! Each endpoint row holds `rate_next_at_us`, the earliest time its next
//! request may go (GCRA's theoretical arrival time, without a burst
//! allowance). A sender takes the next slot with one `UPDATE`: the slot is
//! that time, or now if it has passed, and the time moves on by one
//! interval. PostgreSQL serialises updates of one row and SQLite has a
//! single writer, so no two senders, on any instance, get the same slot.
//! The sender then sleeps until its slot: nothing polls, nothing is dropped.
//!
//! The statement reads the limit from the row, not from the caller's
//! cached copy, so a changed limit applies from the next slot even to
//! deliveries an instance prepared before the change. "Now" is the
//! database's clock, and the answer is how long to wait rather than a time
//! of day, so instances whose clocks disagree still space their requests by
//! the database's.
//!
//! A slot is only taken if it comes within the caller's `max_wait`: a
//! sender that could not use it (its claim would run out first) takes
//! none, so a slot is never spent on a request that is not made, and a
//! backlog cannot push the endpoint's next slot ever further away.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Value};

use crate::{db::statement, ids::EndpointId};

/// The highest limit an admin may set, in requests per second.
pub const MAX_RATE_PER_SECOND: i64 = 10_000;

/// Microseconds between two requests, rounded up so that the spacing never
/// adds up to more than the limit (1 000 000 / 3 is 333 334, not 333 333).
const INTERVAL_US: &str = "((999999 + rate_limit_per_second) / rate_limit_per_second)";

/// No limit (any value below 1 is treated as none; input refuses them).
const UNLIMITED: &str = "COALESCE(rate_limit_per_second, 0) < 1";

/// The database's clock in epoch microseconds as the row is written:
/// `clock_timestamp()` on PostgreSQL, read after waiting for the row's lock
/// (`statement_timestamp()` would be from before, and a sender queued
/// behind others would wait too long, then send bunched with the next);
/// `'now'` on SQLite, fixed for the statement, which runs holding the one
/// write lock. On PostgreSQL each use reads the clock anew, microseconds
/// apart: a wait may come out a few microseconds short of the slot, or
/// below zero, which reads as zero.
fn now_us(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint",
        _ => "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)",
    }
}

/// What [`take_slot`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The slot is this far away: send then.
    In(Duration),
    /// The endpoint has no limit (any more): send now.
    Unlimited,
    /// No slot comes within `max_wait` (or the endpoint is gone); nothing
    /// was taken.
    Later,
}

/// Takes the endpoint's next slot if it comes within `max_wait`.
pub async fn take_slot<C: ConnectionTrait>(
    db: &C,
    endpoint: &EndpointId,
    max_wait: Duration,
) -> Result<Slot, DbErr> {
    let backend = db.get_database_backend();
    let now = now_us(backend);
    // An unlimited endpoint's row matches and is left as it was, so that
    // "no row" means "not that soon" alone.
    let sql = format!(
        "UPDATE endpoints SET rate_next_at_us = CASE WHEN {UNLIMITED} THEN rate_next_at_us \
             ELSE (CASE WHEN rate_next_at_us > {now} THEN rate_next_at_us ELSE {now} END) \
                 + {INTERVAL_US} END \
         WHERE id = $1 AND ({UNLIMITED} OR rate_next_at_us <= {now} + $2) \
         RETURNING CASE WHEN {UNLIMITED} THEN 1 ELSE 0 END AS unlimited, \
             CASE WHEN {UNLIMITED} THEN 0 ELSE rate_next_at_us - {INTERVAL_US} - {now} END AS wait_us"
    );
    // Far enough to mean "any time", small enough not to overflow.
    let max_wait_us = i64::try_from(max_wait.as_micros())
        .unwrap_or(i64::MAX)
        .min(i64::MAX / 4);
    let values: Vec<Value> = vec![endpoint.as_str().into(), max_wait_us.into()];
    let Some(row) = db.query_one_raw(statement(backend, &sql, values)).await? else {
        return Ok(Slot::Later);
    };
    let unlimited: i32 = row.try_get("", "unlimited")?;
    let wait_us: i64 = row.try_get("", "wait_us")?;
    Ok(if unlimited == 1 {
        Slot::Unlimited
    } else {
        Slot::In(Duration::from_micros(wait_us.max(0) as u64))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use sea_orm::{Database, DatabaseConnection};

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// A database with just the columns the statement reads, holding one
    /// endpoint limited to `limit` a second.
    async fn endpoint(
        dir: &tempfile::TempDir,
        limit: Option<i32>,
    ) -> (DatabaseConnection, EndpointId) {
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let db = Database::connect(url).await.expect("open");
        db.execute_unprepared(
            "CREATE TABLE endpoints (id TEXT PRIMARY KEY, rate_limit_per_second INTEGER, \
             rate_next_at_us BIGINT NOT NULL DEFAULT 0)",
        )
        .await
        .expect("create");
        let id = EndpointId::new();
        let limit = limit.map_or("NULL".to_owned(), |n| n.to_string());
        db.execute_unprepared(&format!(
            "INSERT INTO endpoints (id, rate_limit_per_second) VALUES ('{id}', {limit})"
        ))
        .await
        .expect("insert");
        (db, id)
    }

    async fn set_limit(db: &DatabaseConnection, limit: &str) {
        db.execute_unprepared(&format!(
            "UPDATE endpoints SET rate_limit_per_second = {limit}"
        ))
        .await
        .expect("set the limit");
    }

    async fn take(db: &DatabaseConnection, id: &EndpointId, max_wait: Duration) -> Slot {
        take_slot(db, id, max_wait).await.expect("take")
    }

    fn wait(slot: Slot) -> Duration {
        match slot {
            Slot::In(wait) => wait,
            other => panic!("expected a slot, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn slots_are_one_interval_apart_and_the_first_is_now() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, id) = endpoint(&dir, Some(20)).await;
        // Each slot as an instant: the database's "now" fell between the
        // call and its answer, and the slot is `wait` after it.
        let mut slots = Vec::new();
        for n in 0..5 {
            let asked = Instant::now();
            let wait = wait(take(&db, &id, SECOND).await);
            if n == 0 {
                assert_eq!(wait, Duration::ZERO, "the first slot is now");
            }
            slots.push((asked + wait, Instant::now() + wait));
        }
        // The database clock reads whole milliseconds.
        let (interval, slack) = (Duration::from_millis(50), Duration::from_millis(1));
        for pair in slots.windows(2) {
            let (earliest, latest) = (pair[0], pair[1]);
            assert!(latest.1 - earliest.0 + slack >= interval, "{slots:?}");
            assert!(
                latest.0.saturating_duration_since(earliest.1) <= interval + slack,
                "{slots:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_slot_beyond_the_wait_allowed_is_not_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, id) = endpoint(&dir, Some(1)).await;
        wait(take(&db, &id, SECOND).await);
        // The next is a second away: not within 100 ms, and refusing it
        // leaves it free for whoever can wait.
        let soon = Duration::from_millis(100);
        assert_eq!(take(&db, &id, soon).await, Slot::Later);
        assert_eq!(take(&db, &id, soon).await, Slot::Later);
        let next = wait(take(&db, &id, 2 * SECOND).await);
        assert!(
            next > Duration::from_millis(900) && next <= SECOND,
            "{next:?}"
        );
    }

    #[tokio::test]
    async fn an_endpoint_without_a_limit_sends_at_once_and_a_lifted_limit_applies_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, id) = endpoint(&dir, None).await;
        assert_eq!(take(&db, &id, Duration::ZERO).await, Slot::Unlimited);
        set_limit(&db, "1").await;
        wait(take(&db, &id, SECOND).await);
        assert_eq!(take(&db, &id, Duration::ZERO).await, Slot::Later);
        set_limit(&db, "NULL").await;
        assert_eq!(take(&db, &id, Duration::ZERO).await, Slot::Unlimited);
    }

    #[tokio::test]
    async fn an_endpoint_that_is_gone_has_no_slot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, id) = endpoint(&dir, Some(5)).await;
        db.execute_unprepared("DELETE FROM endpoints")
            .await
            .expect("delete");
        assert_eq!(take(&db, &id, SECOND).await, Slot::Later);
    }
}
