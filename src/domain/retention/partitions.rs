//! PostgreSQL's history partitions (see `migration::partitioning`): weeks
//! made ahead, and weeks past the retention period dropped whole.
//!
//! Both run under one advisory lock, so instances take turns, and with a short
//! lock timeout: attaching or dropping a partition briefly locks its parent,
//! and a chore that cannot have the lock at once gives way to the traffic and
//! tries again at the next sweep (weeks are made a week ahead).

use migration::partitioning::{DAY_MS, SPAN_DAYS, TABLES, id_floor, make_span, span_start};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, TransactionTrait, Value};

use crate::db::statement;

/// The advisory lock the chores below take turns under, with the schema's
/// name (several hookline databases may share one server).
const LOCK_KEY: i32 = 0x7061_7274;
/// How long a chore may wait for a table lock before it gives way.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '200ms'";

/// One partition of `events` with its id range (`None`: unbounded).
#[derive(Debug)]
struct Span {
    /// What follows the table's name: `_history`, `_p20261207`.
    suffix: String,
    from: Option<String>,
    to: String,
}

/// Makes this week's and next week's partitions where no partition covers
/// them yet (a `_history` partition may). Returns how many tables
/// were made.
pub async fn make_ahead(db: &DatabaseConnection, now_ms: i64) -> Result<usize, DbErr> {
    let this_week = span_start(now_ms.div_euclid(DAY_MS));
    let mut made = 0;
    for start in [this_week, this_week + SPAN_DAYS] {
        let txn = db.begin().await?;
        if !locked(&txn).await? {
            break;
        }
        for (table, prefix) in TABLES {
            // Covered by this week's partition once made, or by `_history`.
            if covered(&txn, table, &id_floor(prefix, start * DAY_MS)).await? {
                continue;
            }
            for sql in make_span(table, prefix, start) {
                txn.execute_unprepared(&sql).await?;
            }
            made += 1;
        }
        txn.commit().await?;
    }
    Ok(made)
}

/// Drops, oldest first, each week (or the `_history` partition) whose every
/// id is older than `cutoff_ms`, with its deliveries and attempts, and the
/// few rows elsewhere that belong to it (a replay's deliveries, a late
/// retry's attempts). A week an open delivery still needs (its event is of
/// the week, or its row is in the week's partition) is kept, for the
/// row-by-row purge to take what it can of it, and the later weeks are
/// dropped all the same: one tenant's delivery kept open for months (a long
/// retry policy) used to stop every later week's drop, for every tenant.
/// Returns the weeks dropped.
pub async fn drop_expired(db: &DatabaseConnection, cutoff_ms: i64) -> Result<usize, DbErr> {
    let limit = id_floor(TABLES[0].1, cutoff_ms);
    let mut dropped = 0;
    for span in spans(db).await? {
        if span.to > limit {
            break;
        }
        let txn = db.begin().await?;
        if !locked(&txn).await? {
            break;
        }
        if drop_span(&txn, &span).await? {
            txn.commit().await?;
            dropped += 1;
        } else {
            // Ended here, not when dropped: until then it holds the lock
            // the next week's transaction tries to take.
            txn.rollback().await?;
        }
    }
    Ok(dropped)
}

/// Drops one span's partitions in `txn`; false when an open delivery needs it.
async fn drop_span<C: ConnectionTrait>(txn: &C, span: &Span) -> Result<bool, DbErr> {
    // The span's bounds are events' ids; the same moments in another table
    // are the same ids with that table's prefix.
    let moment = |prefix: &str, id: &str| format!("{prefix}{}", &id[TABLES[0].1.len()..]);
    let within = |prefix: &str, column: &str| {
        let lower = span.from.as_deref().map_or(String::new(), |from| {
            format!("{column} >= '{}' AND ", moment(prefix, from))
        });
        format!("{lower}{column} < '{}'", moment(prefix, &span.to))
    };
    let (events, deliveries) = (within("evt_", "event_id"), within("dlv_", "delivery_id"));
    let (after_deliveries, after_attempts) = (moment("dlv_", &span.to), moment("att_", &span.to));
    // Open: its event is of the span, or its row is in the span's
    // partition (an older event's replay or retry made during the span).
    let open = format!(
        "SELECT 1 FROM delivery_queue WHERE {events} OR ({}) LIMIT 1",
        within("dlv_", "id")
    );
    if txn.query_one_raw(stmt(&open, vec![])).await?.is_some() {
        return Ok(false);
    }
    for sql in [
        format!(
            "DELETE FROM delivery_attempts WHERE delivery_id IN \
             (SELECT id FROM deliveries WHERE {events} AND id >= '{after_deliveries}')"
        ),
        format!("DELETE FROM deliveries WHERE {events} AND id >= '{after_deliveries}'"),
        format!("DELETE FROM delivery_attempts WHERE {deliveries} AND id >= '{after_attempts}'"),
    ] {
        txn.execute_unprepared(&sql).await?;
    }
    for (table, _) in TABLES.iter().rev() {
        let sql = format!("DROP TABLE IF EXISTS {table}{}", span.suffix);
        txn.execute_unprepared(&sql).await?;
    }
    Ok(true)
}

/// `events`' partitions with an upper bound, oldest first.
async fn spans<C: ConnectionTrait>(db: &C) -> Result<Vec<Span>, DbErr> {
    let sql = "SELECT substr(c.relname, length('events') + 1) AS suffix, \
               substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([^'']+)''\\)') AS from_id, \
               substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)') AS to_id \
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
               WHERE i.inhparent = 'events'::regclass ORDER BY to_id";
    let mut spans = Vec::new();
    for row in db.query_all_raw(stmt(sql, vec![])).await? {
        let to: Option<String> = row.try_get("", "to_id")?;
        if let Some(to) = to {
            spans.push(Span {
                suffix: row.try_get("", "suffix")?,
                from: row.try_get("", "from_id")?,
                to,
            });
        }
    }
    Ok(spans)
}

/// Whether a partition of `table` other than the default would hold `id`.
async fn covered<C: ConnectionTrait>(db: &C, table: &str, id: &str) -> Result<bool, DbErr> {
    let sql = format!(
        "SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = '{table}'::regclass \
         AND $1 < substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)') \
         AND $1 >= coalesce(substring(pg_get_expr(c.relpartbound, c.oid) \
             FROM 'FROM \\(''([^'']+)''\\)'), '')"
    );
    Ok(db
        .query_one_raw(stmt(&sql, vec![id.into()]))
        .await?
        .is_some())
}

/// Takes the chores' lock for `txn`'s time; false when another instance has
/// it (that one is doing the chore).
async fn locked<C: ConnectionTrait>(txn: &C) -> Result<bool, DbErr> {
    txn.execute_unprepared(LOCK_TIMEOUT).await?;
    let sql = "SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema())) AS locked";
    match txn.query_one_raw(stmt(sql, vec![LOCK_KEY.into()])).await? {
        Some(row) => row.try_get("", "locked"),
        None => Ok(false),
    }
}

fn stmt(sql: &str, values: Vec<Value>) -> sea_orm::Statement {
    statement(DbBackend::Postgres, sql, values)
}

#[cfg(test)]
mod tests {
    use migration::partitioning::{DAY_MS, SPAN_DAYS, id_floor, span_partition, span_start};

    use crate::{ids::EventId, time::now_ms};

    #[test]
    fn an_id_made_now_sorts_between_the_floors_of_now_and_a_moment_later() {
        let before = now_ms();
        let id = EventId::new();
        let after = now_ms() + 1;
        assert!(id_floor("evt_", before).as_str() <= id.as_str());
        assert!(id.as_str() < id_floor("evt_", after).as_str());
        assert_eq!(id_floor("evt_", before).len(), id.as_str().len());
        assert_eq!(&id_floor("evt_", 0)[4..], "00000000000000000000000000");
        assert!(id_floor("evt_", DAY_MS - 1) < id_floor("evt_", DAY_MS));
    }

    #[test]
    fn weeks_start_on_monday_and_are_named_by_its_utc_date() {
        // 2026-12-05 was a Saturday; its week began on Monday 2026-11-30.
        let saturday = 1_796_428_800_000 / DAY_MS;
        assert_eq!(span_partition("events", saturday), "events_p20261205");
        assert_eq!(
            span_partition("events", span_start(saturday)),
            "events_p20261130"
        );
        assert_eq!(span_start(saturday - 5), span_start(saturday));
        assert_eq!(span_start(saturday - 6), span_start(saturday) - SPAN_DAYS);
        assert_eq!(span_start(saturday + 1), span_start(saturday));
        assert_eq!(span_start(saturday + 2), span_start(saturday) + SPAN_DAYS);
        assert_eq!(span_partition("events", 0), "events_p19700101");
        assert_eq!(
            span_partition("deliveries", 11_009 + 7),
            "deliveries_p20000229"
        );
        assert_eq!(
            span_partition("deliveries", 11_009 + 8),
            "deliveries_p20000301"
        );
    }
}
