//! Connecting to the database and bringing its schema up to date.

mod held;
mod pg_url;
mod placeholder;
mod postgres;
mod primary;
mod probe;
mod replica;
pub(crate) mod script;

pub use held::Kept;
pub use placeholder::{placeholders, statement, tuples};
pub use probe::probe;
pub use replica::{LogReads, Served};

use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

/// Arbitrary, fixed key of the PostgreSQL advisory lock held while migrating.
const MIGRATION_LOCK_KEY: i64 = 0x686f_6f6b_6c69_6e65; // "hookline"

/// Read-only connections beside SQLite's one writer.
const SQLITE_READERS: u32 = 4;
/// PostgreSQL connections for changes, and for queries: 32 in all.
const PG_WRITERS: u32 = 24;
const PG_READERS: u32 = 8;

/// The database, as two pools. `write` takes every change, and every read
/// that decides a change; `read` takes queries. Readers never block writers
/// (SQLite in WAL mode, PostgreSQL's MVCC), and with pools of their own
/// however many heavy queries run, they never hold the connections publishing
/// needs. On SQLite `write` is the one writer connection and `read` a few
/// read-only connections on the same file; on PostgreSQL `read` is a small
/// pool of read-only sessions with a statement timeout.
#[derive(Clone, Debug)]
pub struct Db {
    pub write: DatabaseConnection,
    pub read: DatabaseConnection,
    /// Where log queries go: `read`, or a replica (see `replica`).
    pub log: LogReads,
}

impl Db {
    fn new(write: DatabaseConnection, read: DatabaseConnection) -> Self {
        let log = LogReads::primary_only(read.clone());
        Self { write, read, log }
    }

    /// Sends log queries to the PostgreSQL replica at `url` while it is at
    /// most `max_lag` behind.
    pub fn with_replica(mut self, url: &str, max_lag: Duration) -> anyhow::Result<Self> {
        self.log = LogReads::with_replica(self.read.clone(), url, max_lag)?;
        Ok(self)
    }
}

/// Opens the writer and the readers (see [`Db`]).
pub async fn connect(url: &str) -> anyhow::Result<Db> {
    if is_postgres(url) {
        let (write, read) =
            postgres::connect(url, &redact_url(url), PG_WRITERS, PG_READERS).await?;
        return Ok(Db::new(write, read));
    }
    let write = connect_writer(url).await?;
    let read = if crate::keys::sqlite_file(url).is_some() {
        connect_sqlite_readers(url).await?
    } else {
        // An in-memory database exists only on the connection that made it.
        write.clone()
    };
    Ok(Db::new(write, read))
}

/// What SQLite's pools share (PostgreSQL's are made in `postgres`).
fn sqlite_pool_options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        // A SQLite connection is in this process: a ping each time one is
        // taken from the pool finds only a stopped connection thread, which
        // the statement finds as well, and costs a trip to that thread and
        // back (two wake-ups at a moderate load).
        .test_before_acquire(false)
        .connect_timeout(Duration::from_secs(5))
        // A request waits this long for a connection before it is told the
        // database is unavailable.
        .acquire_timeout(Duration::from_secs(5));
    options
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens SQLite's writer (PostgreSQL's pools are in `postgres`). It gets WAL,
/// `synchronous = FULL` and a busy timeout, and is created when missing; it
/// has one connection because SQLite has one writer, and queueing in the pool
/// beats `SQLITE_BUSY` retries.
///
/// `FULL`: the WAL is synced to disk before each commit returns, so what a
/// publish acknowledged survives a power loss or the machine's crash, as a
/// PostgreSQL commit does. With `NORMAL` (the usual WAL advice) a commit
/// reaches only the operating system's cache and the last ones acknowledged
/// may roll back after such a crash.
async fn connect_writer(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = sqlite_pool_options(url);
    if url.starts_with("sqlite:") {
        options
            .max_connections(1)
            .map_sqlx_sqlite_opts(|opts| {
                opts.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            })
            .map_sqlx_sqlite_pool_opts(|pool| {
                pool.after_release(|conn, _| Box::pin(outside_transaction(conn)))
            });
    }
    Database::connect(options)
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))
}

/// Opens SQLite's read-only pool, once the writer has made the file and
/// switched it to WAL (a read-only connection can do neither).
async fn connect_sqlite_readers(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = sqlite_pool_options(url);
    options
        .max_connections(SQLITE_READERS)
        .map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(false)
                .read_only(true)
                // Only a checkpoint or recovery makes a WAL reader wait.
                .busy_timeout(Duration::from_secs(10))
        })
        .map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_release(|conn, _| Box::pin(outside_transaction(conn)))
        });
    Database::connect(options)
        .await
        .with_context(|| format!("opening read-only connections to {}", redact_url(url)))
}

/// Whether a connection coming back to the pool may be used again: only when
/// it is outside any transaction. Otherwise the pool closes it (which rolls
/// back whatever it holds) and opens a fresh one.
///
/// A transaction whose COMMIT fails (SQLite out of space or failing to
/// write: FULL, IOERR) is rolled back by SQLite itself; the ROLLBACK sent
/// when it is dropped then fails, and the driver still counts one open
/// transaction. On that connection every later BEGIN would become a
/// SAVEPOINT and every COMMIT a RELEASE inside a transaction that never
/// commits: answered as stored, readable on that connection, gone after a
/// restart. Closing the connection is the one way back to a state the
/// driver and the database agree on.
async fn outside_transaction<C: sea_orm::sqlx::Connection>(
    conn: &mut C,
) -> Result<bool, sea_orm::sqlx::Error> {
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    // The rollback queued when the transaction was dropped may not have run
    // yet: a round trip lets it finish before the count is read again.
    conn.ping().await?;
    if conn.is_in_transaction() {
        tracing::warn!(
            "a database connection was left inside a transaction (a failed commit or \
             rollback): closing it"
        );
        return Ok(false);
    }
    Ok(true)
}

/// Applies pending migrations. On PostgreSQL several instances may start at
/// once, so they take turns under an advisory lock held by a dedicated
/// connection; migrations run on that same connection.
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    let db = if is_postgres(url) {
        postgres::single(url, &redact_url(url)).await?
    } else {
        connect_writer(url).await?
    };
    let locked = db.get_database_backend() == DbBackend::Postgres;
    if locked {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_lock($1)",
            [MIGRATION_LOCK_KEY.into()],
        ))
        .await
        .context("taking the migration lock")?;
    }
    let mut result = Migrator::up(&db, None).await.context("applying migrations");
    if locked && result.is_ok() {
        // This week's and next week's history partitions exist before anyone
        // writes (each instance's housekeeping keeps them ahead after that).
        result = crate::domain::retention::make_ahead(&db, crate::time::now_ms())
            .await
            .map(drop)
            .context("making history partitions");
    }
    if locked {
        // Closing the connection releases the lock too; unlocking first keeps
        // the next instance from waiting on the pool's teardown.
        let _ = db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_unlock($1)",
                [MIGRATION_LOCK_KEY.into()],
            ))
            .await;
    }
    db.close().await.ok();
    result
}

/// The URL without its password, for messages. Done by hand: a libpq
/// host list (`h1:5432,h2:5433`) is not a URL the `url` crate parses.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

pub fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// A statement that lost a race with a transaction beside it: a foreign key
/// to a row deleted meanwhile (SQLite's; see `domain::removal` for
/// PostgreSQL), or a deadlock or serialization failure
/// (PostgreSQL class 40). Trying again after checking again can succeed.
pub fn is_race(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
    ) || is_transaction_conflict(err)
}

/// Runs `attempt` again (up to four more times, each a little later) while
/// the database aborts it as a [`is_transaction_conflict`]: for writes that
/// lock rows in another order than the recorder does, such as deletions.
pub async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> Result<T, sea_orm::DbErr>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sea_orm::DbErr>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(err) if tries < 4 && is_transaction_conflict(&err) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(10 * tries)).await;
            }
            result => return result,
        }
    }
}

/// A deadlock or serialization failure (PostgreSQL class 40): the database
/// aborted this transaction so that another could go on; nothing of it was
/// written, and running it again can succeed.
pub fn is_transaction_conflict(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx::Error as Sqlx};
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            matches!(inner.as_ref(), Sqlx::Database(db)
                if db.code().is_some_and(|code| code.len() == 5 && code.starts_with("40")))
        }
        _ => false,
    }
}

/// The `id` column of every row `statement` answered (a `RETURNING id`, a
/// `SELECT id`).
pub async fn returned_ids<C: sea_orm::ConnectionTrait>(
    db: &C,
    statement: Statement,
) -> Result<Vec<String>, sea_orm::DbErr> {
    db.query_all_raw(statement)
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "id"))
        .collect()
}

/// Parameter bytes one multi-row statement should stay under.
///
/// sqlx 0.9 opens PostgreSQL connections without `TCP_NODELAY` (a regression,
/// fixed upstream but not released). Over TLS, a message longer than one TLS
/// record (16 KiB) goes out in several writes, and the second waits for the
/// server's delayed ACK: 40 ms per statement. Keeping each statement's
/// parameters under one record avoids it for everything but single rows
/// larger than that (big event payloads).
pub const STATEMENT_BYTES: usize = 12 * 1024;

/// Splits `items` into runs of at most `max_rows` whose `size`s add up to at
/// most [`STATEMENT_BYTES`] (a single larger item makes a run of its own).
pub fn chunks_by_size<T>(items: &[T], max_rows: usize, size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    chunks_within(items, max_rows, STATEMENT_BYTES, size)
}

/// Splits `items` into runs of at most `max_rows` whose `size`s add up to at
/// most `max_bytes` (a single larger item makes a run of its own).
pub fn chunks_within<T>(
    items: &[T],
    max_rows: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, item) in items.iter().enumerate() {
        let item_bytes = size(item);
        let full = index - start == max_rows || (index > start && bytes + item_bytes > max_bytes);
        if full {
            chunks.push(&items[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += item_bytes;
    }
    if start < items.len() {
        chunks.push(&items[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ping each time a connection was taken was a trip to its thread
    /// and back, for nothing a statement would not find out.
    #[tokio::test]
    async fn sqlite_connections_are_not_pinged_each_time_one_is_taken() {
        let dir = tempfile::tempdir().expect("a directory");
        let url = format!("sqlite://{}", dir.path().join("pinged.db").display());
        let db = connect(&url).await.expect("a database");
        for pool in [&db.write, &db.read] {
            let options = pool.get_sqlite_connection_pool().options();
            assert!(!options.get_test_before_acquire());
        }
    }

    /// With `synchronous = NORMAL` a commit in WAL mode reached only the
    /// operating system's cache: a publish could be acknowledged and then
    /// lost to a power cut.
    #[tokio::test]
    async fn sqlite_commits_are_synced_to_disk_before_they_are_acknowledged() {
        let dir = tempfile::tempdir().expect("a directory");
        let url = format!("sqlite://{}", dir.path().join("synced.db").display());
        let db = connect(&url).await.expect("a database");
        let row = db
            .write
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA synchronous",
            ))
            .await
            .expect("the pragma")
            .expect("a row");
        let synchronous: i32 = row.try_get_by_index(0).expect("a number");
        assert_eq!(synchronous, 2, "FULL: the WAL is synced at each commit");
    }

    #[test]
    fn chunks_respect_rows_and_bytes() {
        let items: Vec<usize> = vec![100; 10];
        let by_rows = chunks_by_size(&items, 4, |n| *n);
        assert_eq!(
            by_rows.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [4, 4, 2]
        );
        let big = vec![5_000, 5_000, 5_000, 20_000, 10];
        let by_bytes = chunks_by_size(&big, 100, |n| *n);
        assert_eq!(
            by_bytes.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [2, 1, 1, 1]
        );
        assert!(chunks_by_size::<usize>(&[], 10, |n| *n).is_empty());
        let bodies = vec![300_000, 300_000, 300_000, 300_000, 2_000_000, 10];
        let by_budget = chunks_within(&bodies, 500, 1_000_000, |n| *n);
        assert_eq!(
            by_budget.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [3, 1, 1, 1]
        );
    }

    #[test]
    fn passwords_are_hidden_in_single_and_multi_host_urls() {
        assert_eq!(
            redact_url("postgres://hook:s3cret@db:5432/h"),
            "postgres://hook:***@db:5432/h"
        );
        assert_eq!(
            redact_url(
                "postgres://hook:s%40cret@h1:5432,h2:5433/h?target_session_attrs=read-write"
            ),
            "postgres://hook:***@h1:5432,h2:5433/h?target_session_attrs=read-write"
        );
        assert_eq!(
            redact_url("postgres://hook@h1,h2/h"),
            "postgres://hook@h1,h2/h"
        );
        assert_eq!(redact_url("sqlite://hookline.db"), "sqlite://hookline.db");
    }
}
