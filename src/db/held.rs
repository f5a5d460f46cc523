//! PostgreSQL connections kept between the statements of the writers every
//! event goes through (group commits, batches of attempts).
//!
//! A connection taken from sqlx's pool for one statement costs a second
//! round trip when it goes back: sqlx 0.9 pings every connection handed back
//! to its pool, from a task it spawns for that: two round trips for every
//! statement, and at a moderate load each event costs about one. A [`Kept`] holds a few connections taken from the
//! pool and hands them to its writers without that: a statement takes one,
//! and gives it back here when it succeeded. One whose statement failed goes
//! back to the pool, which checks it (broken, or on a demoted primary after
//! a failover) and closes it if need be; and every connection goes back to
//! the pool once it has been kept for [`KEEP_FOR`], so the pool's own checks
//! (the primary it was opened on, idle time) keep seeing every connection.
//! None taken before the primary last changed (a failover) is used after it.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sea_orm::{
    DatabaseConnection, DbBackend, DbErr, QueryResult, RuntimeErr, Statement, Values,
    sqlx::{self, PgPool, Postgres, pool::PoolConnection},
};
use sea_query_sqlx::SqlxValues;

use super::primary;

/// How long a connection is kept before it goes back to the pool.
const KEEP_FOR: Duration = Duration::from_secs(5);

/// A connection, when it was taken from the pool, and how many times the
/// primary had changed then (`primary::changes`).
type Taken = (PoolConnection<Postgres>, Instant, u64);

/// Connections kept for one writer; see the module's documentation.
#[derive(Clone)]
pub struct Kept {
    pool: Option<PgPool>,
    idle: Arc<Mutex<Vec<Taken>>>,
    most: usize,
}

impl Kept {
    /// Keeps at most `most` idle connections of `db`'s pool (on SQLite,
    /// whose connections are in this process, none: statements go through
    /// `db`).
    pub fn new(db: &DatabaseConnection, most: usize) -> Self {
        let pool = (db.get_database_backend() == DbBackend::Postgres)
            .then(|| db.get_postgres_connection_pool().clone());
        Self {
            pool,
            idle: Arc::default(),
            most,
        }
    }

    /// Runs `statement` on a kept connection (`db` itself on SQLite) and
    /// answers its rows.
    pub async fn query_all(
        &self,
        db: &DatabaseConnection,
        statement: Statement,
    ) -> Result<Vec<QueryResult>, DbErr> {
        use sea_orm::ConnectionTrait;
        let Some(pool) = &self.pool else {
            return db.query_all_raw(statement).await;
        };
        let mut conn = match self.take() {
            Some(conn) => conn,
            None => {
                let changes = primary::changes();
                let conn = pool.acquire().await.map_err(to_db_err)?;
                (conn, Instant::now(), changes)
            }
        };
        let values = statement.values.unwrap_or(Values(Vec::new()));
        let rows = sqlx::query_with(sqlx::AssertSqlSafe(statement.sql), SqlxValues(values))
            .fetch_all(&mut *conn.0)
            .await
            .map_err(to_db_err)?;
        self.give_back(conn);
        Ok(rows.into_iter().map(QueryResult::from).collect())
    }

    fn take(&self) -> Option<Taken> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // One kept too long (traffic stopped meanwhile), or taken before the
        // primary changed, goes back to the pool, which checks it (and
        // closes one opened on a former primary) before anyone uses it.
        idle.pop().filter(|(_, since, changes)| {
            since.elapsed() < KEEP_FOR && *changes == primary::changes()
        })
    }

    /// Keeps `conn` for the next statement, unless it has been kept long
    /// enough or enough are kept: then it goes back to the pool.
    fn give_back(&self, conn: Taken) {
        if conn.1.elapsed() >= KEEP_FOR || conn.2 != primary::changes() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.most {
            idle.push(conn);
        }
    }
}

/// sqlx's error as sea-orm reports a failed query, so that the checks on
/// errors (`db::is_race`, `error::is_connection_error`, …) see the same.
pub(super) fn to_db_err(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(err)))
}
