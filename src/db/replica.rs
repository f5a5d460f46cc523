//! Log queries on a PostgreSQL read replica (`HOOKLINE_DATABASE_READ_URL`),
//! while it is close enough behind the primary.
//!
//! The log (events, deliveries, attempts, their counts) is most of what
//! dashboards and searches read, and nothing reads it to decide a change, so
//! it may come from a streaming replica. How far behind the replica is, is
//! measured every [`SAMPLE_EVERY`]: the primary's WAL position is noted with
//! the time, and the replica's replay position says which of those notes it
//! has passed; it is behind by at most the age of the newest note passed.
//! Idle or busy, that bound holds (the time of the last replayed commit, the
//! usual measure, grows while the primary is idle). While the bound is over
//! `HOOKLINE_DATABASE_READ_MAX_LAG`, or the replica does not answer, log
//! queries go to the primary's readers; a lookup by id that the replica does
//! not know is asked of the primary too, so an event is found at once after
//! its publish was acknowledged.

use std::{
    collections::VecDeque,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::future::BoxFuture;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, SqlxPostgresConnector, Statement,
    sqlx::postgres::{PgConnectOptions, PgPoolOptions},
};

/// How often the replica's lag is measured.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Notes of the primary's WAL position kept: a minute's worth.
const NOTES_KEPT: usize = 240;
/// Connections to the replica.
const REPLICA_CONNECTIONS: u32 = 8;
/// Lag that stands for "unknown": the replica is not used.
const UNKNOWN: u64 = u64::MAX;

/// Where log queries go: the primary's readers, or a replica while it is
/// fresh enough.
#[derive(Clone, Debug)]
pub struct LogReads {
    primary: DatabaseConnection,
    replica: Option<Arc<Replica>>,
}

#[derive(Debug)]
struct Replica {
    conn: DatabaseConnection,
    max_lag_ms: u64,
    /// Milliseconds behind the primary at most, or [`UNKNOWN`].
    lag_ms: AtomicU64,
    served_replica: AtomicU64,
    served_primary: AtomicU64,
}

/// Which database answered a log query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    Replica,
    Primary,
}

impl LogReads {
    /// No replica: log queries go to the primary's readers.
    pub fn primary_only(primary: DatabaseConnection) -> Self {
        Self {
            primary,
            replica: None,
        }
    }

    /// Log queries on the replica at `url` while it is at most `max_lag`
    /// behind, on `primary` (the primary's readers) otherwise. The replica
    /// need not be up: it is used once it answers.
    pub fn with_replica(
        primary: DatabaseConnection,
        url: &str,
        max_lag: Duration,
    ) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .with_context(|| {
                format!(
                    "invalid HOOKLINE_DATABASE_READ_URL {}",
                    super::redact_url(url)
                )
            })?
            .options([
                ("default_transaction_read_only", "on"),
                ("statement_timeout", "30s"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(REPLICA_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(options);
        let replica = Arc::new(Replica {
            conn: SqlxPostgresConnector::from_sqlx_postgres_pool(pool),
            max_lag_ms: max_lag.as_millis() as u64,
            lag_ms: AtomicU64::new(UNKNOWN),
            served_replica: AtomicU64::new(0),
            served_primary: AtomicU64::new(0),
        });
        tokio::spawn(watch(primary.clone(), Arc::downgrade(&replica)));
        Ok(Self {
            primary,
            replica: Some(replica),
        })
    }

    /// Runs a log query with `run`: on the replica while it is fresh
    /// enough, on the primary otherwise or when the replica fails it (it
    /// is then not used until it answers the lag's next measure). Answers
    /// which database gave the rows.
    pub async fn read<T>(
        &self,
        run: impl for<'c> Fn(&'c DatabaseConnection) -> BoxFuture<'c, Result<T, DbErr>>,
    ) -> Result<(T, Served), DbErr> {
        let (db, served) = self.pick();
        match run(db).await {
            Err(err) if served == Served::Replica => {
                tracing::warn!("the read replica failed a query, asking the primary: {err}");
                if let Some(replica) = &self.replica {
                    replica.lag_ms.store(UNKNOWN, Ordering::Relaxed);
                    replica.served_replica.fetch_sub(1, Ordering::Relaxed);
                    replica.served_primary.fetch_add(1, Ordering::Relaxed);
                }
                Ok((run(&self.primary).await?, Served::Primary))
            }
            answered => Ok((answered?, served)),
        }
    }

    /// The connection for the next log query, and which database it is.
    fn pick(&self) -> (&DatabaseConnection, Served) {
        match &self.replica {
            Some(replica) if replica.lag_ms.load(Ordering::Relaxed) <= replica.max_lag_ms => {
                replica.served_replica.fetch_add(1, Ordering::Relaxed);
                (&replica.conn, Served::Replica)
            }
            Some(replica) => {
                replica.served_primary.fetch_add(1, Ordering::Relaxed);
                (&self.primary, Served::Primary)
            }
            None => (&self.primary, Served::Primary),
        }
    }

    /// The primary's readers, for a lookup the replica could not answer.
    pub fn primary(&self) -> &DatabaseConnection {
        &self.primary
    }

    /// For `/metrics`: the replica's lag (`None`: unknown, or no replica
    /// configured, which the second value tells), and log queries served by
    /// the replica and by the primary since the start.
    pub fn figures(&self) -> Option<(Option<Duration>, u64, u64)> {
        let replica = self.replica.as_ref()?;
        let lag = replica.lag_ms.load(Ordering::Relaxed);
        Some((
            (lag != UNKNOWN).then(|| Duration::from_millis(lag)),
            replica.served_replica.load(Ordering::Relaxed),
            replica.served_primary.load(Ordering::Relaxed),
        ))
    }
}

/// Measures the replica's lag until it is dropped. The replica is used only
/// once it has shown it is a copy of the primary's database.
async fn watch(primary: DatabaseConnection, replica: std::sync::Weak<Replica>) {
    let mut notes: VecDeque<(u64, Instant)> = VecDeque::with_capacity(NOTES_KEPT);
    let mut was_fresh = None;
    let mut copy = None;
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let Some(replica) = replica.upgrade() else {
            return;
        };
        if copy.is_none() {
            copy = same_database(&primary, &replica.conn).await;
            if copy == Some(false) {
                tracing::error!(
                    "HOOKLINE_DATABASE_READ_URL names a database that is not a replica of \
                     HOOKLINE_DATABASE_URL's (another cluster, or another database): it is \
                     never used; log queries go to the primary"
                );
            }
        }
        if copy != Some(true) {
            replica.lag_ms.store(UNKNOWN, Ordering::Relaxed);
            continue;
        }
        if let Ok(Some((lsn, _))) = position(&primary, "pg_current_wal_lsn()").await {
            if notes.len() == NOTES_KEPT {
                notes.pop_front();
            }
            notes.push_back((lsn, Instant::now()));
        }
        let lag = match position(&replica.conn, "pg_last_wal_replay_lsn()").await {
            // Not in recovery: a primary (a replica promoted), behind nobody.
            Ok(Some((_, false))) => 0,
            Ok(Some((replayed, true))) => notes
                .iter()
                .rev()
                .find(|(lsn, _)| *lsn <= replayed)
                .map_or(UNKNOWN, |(_, at)| at.elapsed().as_millis() as u64),
            Ok(None) | Err(_) => UNKNOWN,
        };
        replica.lag_ms.store(lag, Ordering::Relaxed);
        let fresh = lag <= replica.max_lag_ms;
        if was_fresh != Some(fresh) {
            if fresh {
                tracing::info!("log queries go to the read replica");
            } else {
                tracing::warn!(
                    lag_ms = (lag != UNKNOWN).then_some(lag),
                    "the read replica is too far behind or does not answer: log queries go to \
                     the primary"
                );
            }
            was_fresh = Some(fresh);
        }
    }
}

/// Whether `replica` holds a copy of `primary`'s database: the same cluster
/// (a streaming replica keeps its primary's system identifier), the same
/// database and the same schema; `None` while either does not answer.
async fn same_database(primary: &DatabaseConnection, replica: &DatabaseConnection) -> Option<bool> {
    let sql = "SELECT concat_ws('/', system_identifier, current_database(), current_schema()) \
               AS id FROM pg_control_system()";
    let mut ids = Vec::with_capacity(2);
    for db in [primary, replica] {
        let row = db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .ok()??;
        ids.push(row.try_get::<String>("", "id").ok()?);
    }
    Some(ids[0] == ids[1])
}

/// A WAL position read with `function`, and whether the server is in
/// recovery (a standby); `None` when it has none to give.
async fn position(db: &DatabaseConnection, function: &str) -> anyhow::Result<Option<(u64, bool)>> {
    let sql = format!("SELECT ({function})::text AS lsn, pg_is_in_recovery() AS standby");
    let row = db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .context("no row")?;
    let lsn: Option<String> = row.try_get("", "lsn")?;
    let standby: bool = row.try_get("", "standby")?;
    Ok(match (lsn, standby) {
        (Some(text), standby) => parse_lsn(&text).map(|lsn| (lsn, standby)),
        (None, false) => Some((0, false)),
        (None, true) => None,
    })
}

/// PostgreSQL's `X/Y` (hexadecimal halves) as one number.
fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

#[cfg(test)]
mod tests {
    use super::parse_lsn;

    #[test]
    fn wal_positions_compare_as_numbers() {
        assert_eq!(parse_lsn("0/16B3748"), Some(0x16B_3748));
        assert!(parse_lsn("1/0") > parse_lsn("0/FFFFFFFF"));
        assert_eq!(parse_lsn("nonsense"), None);
    }
}
