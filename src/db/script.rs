//! SQLite: several statements as one transaction, in one trip to the
//! connection's thread.
//!
//! sqlx runs each SQLite connection on a thread of its own; every statement
//! is handed there and its answer handed back, and at a moderate load each
//! hand-off wakes a sleeping thread. A transaction of five statements is ten
//! of them. sqlx runs every statement of one query text in one hand-off,
//! binding `$N` to the N-th value in each, so a transaction written as one
//! text (`BEGIN IMMEDIATE; …; COMMIT`) costs one.
//!
//! When a statement of it fails, the statements after it (the `COMMIT`
//! among them) do not run, and the connection would go back to its pool
//! inside the open transaction: it is rolled back here first, and a
//! connection whose rollback failed is closed instead of going back.

use sea_orm::{
    DatabaseConnection, DbErr, QueryResult, Value, Values,
    sqlx::{self, Sqlite, pool::PoolConnection},
};
use sea_query_sqlx::SqlxValues;

use super::held::to_db_err;

/// Runs `statements` (each ending in `;`, values bound as `$1`, `$2`, …)
/// between `BEGIN IMMEDIATE` and `COMMIT` on one connection of `db`'s
/// SQLite pool; answers the rows they return. Nothing is kept when it
/// fails.
pub async fn transaction(
    db: &DatabaseConnection,
    statements: &str,
    values: Vec<Value>,
) -> Result<Vec<QueryResult>, DbErr> {
    let pool = db.get_sqlite_connection_pool();
    let mut open = Open(Some(pool.acquire().await.map_err(to_db_err)?));
    let conn = open.0.as_mut().expect("just acquired");
    let sql = format!("BEGIN IMMEDIATE; {statements} COMMIT;");
    let query = sqlx::query_with(sqlx::AssertSqlSafe(sql), SqlxValues(Values(values)));
    let result = query.fetch_all(&mut **conn).await;
    if result.is_err() {
        // Still guarded: dropped while rolling back, it is closed too.
        roll_back(open.0.as_mut().expect("still held")).await;
    }
    // Outside any transaction now (or marked to be closed): back to the pool.
    drop(open.0.take());
    match result {
        Ok(rows) => Ok(rows.into_iter().map(QueryResult::from).collect()),
        Err(err) => Err(to_db_err(err)),
    }
}

/// A connection while its script runs. Dropped before the script ended
/// (its caller was cancelled), the statements left stop at their next
/// step with the transaction open, which sqlx's pool cannot tell (it
/// counts only the transactions it began): the connection is closed,
/// which rolls it back, instead of going back to the pool.
struct Open(Option<PoolConnection<Sqlite>>);

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(mut conn) = self.0.take() {
            conn.close_on_drop();
        }
    }
}

/// Ends whatever transaction a failed statement left open on `conn`. If
/// none is (`BEGIN` itself failed), SQLite refuses the `ROLLBACK` and says
/// so; any other refusal closes the connection.
async fn roll_back(conn: &mut PoolConnection<Sqlite>) {
    match sqlx::query("ROLLBACK").execute(&mut **conn).await {
        Ok(_) => {}
        Err(err) if err.to_string().contains("no transaction is active") => {}
        Err(err) => {
            tracing::warn!(
                "rolling back a failed SQLite transaction failed; closing its connection: {err}"
            );
            conn.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, Statement};

    use super::*;

    /// One connection, so that the statements after a failure run on the
    /// connection the failure went back with; in memory unless a file's
    /// `url` is given.
    async fn one_connection_to(url: &str) -> DatabaseConnection {
        let mut options = ConnectOptions::new(url);
        options.max_connections(1).min_connections(1);
        let db = Database::connect(options).await.expect("a database");
        db.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT)")
            .await
            .expect("a table");
        db
    }

    async fn one_connection() -> DatabaseConnection {
        one_connection_to("sqlite::memory:").await
    }

    /// Inserts row `id` with `note`, as a script of its own.
    async fn insert(db: &DatabaseConnection, id: i64, note: &str) -> Result<(), DbErr> {
        let sql = format!("INSERT INTO t (id, note) VALUES ({id}, $1);");
        transaction(db, &sql, vec![note.into()]).await.map(drop)
    }

    async fn notes(db: &DatabaseConnection) -> Vec<String> {
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT note FROM t ORDER BY id",
            ))
            .await
            .expect("the rows");
        rows.iter()
            .map(|row| row.try_get::<String>("", "note").expect("a note"))
            .collect()
    }

    #[tokio::test]
    async fn every_statement_binds_its_numbered_values_and_the_rows_come_back() {
        let db = one_connection().await;
        let rows = transaction(
            &db,
            "INSERT INTO t (id, note) VALUES (1, $1); \
             INSERT INTO t (id, note) VALUES (2, $2); \
             SELECT note FROM t WHERE note IN ($2, $1) ORDER BY id;",
            vec!["one".into(), "two".into()],
        )
        .await
        .expect("committed");
        let answered: Vec<String> = rows
            .iter()
            .map(|row| row.try_get::<String>("", "note").expect("a note"))
            .collect();
        assert_eq!(answered, ["one", "two"]);
        assert_eq!(notes(&db).await, ["one", "two"]);
    }

    #[tokio::test]
    async fn a_failed_statement_keeps_nothing_and_leaves_no_transaction_open() {
        let db = one_connection().await;
        let failed = transaction(
            &db,
            "INSERT INTO t (id, note) VALUES (1, $1); INSERT INTO t (id, note) VALUES (1, $2);",
            vec!["kept?".into(), "duplicate".into()],
        )
        .await;
        assert!(failed.is_err(), "the second row's key is taken");
        // The same (only) connection: not inside the failed transaction, so
        // a new one begins, and the first row was rolled back with it.
        insert(&db, 2, "after")
            .await
            .expect("a transaction after the failed one");
        assert_eq!(notes(&db).await, ["after"]);
    }

    /// A script whose caller gives up while it runs (a cancelled task) is
    /// rolled back and its connection does not go back to the pool inside
    /// the transaction: the next script begins its own.
    #[tokio::test]
    async fn a_script_dropped_while_it_runs_leaves_nothing_open() {
        let dir = tempfile::tempdir().expect("a directory");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
        let db = one_connection_to(&url).await;
        let slow = "INSERT INTO t (id, note) VALUES (1, $1); \
                    WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                      WHERE x < 3000000) SELECT count(*) AS n FROM c;";
        let gave_up = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            transaction(&db, slow, vec!["dropped".into()]),
        )
        .await;
        assert!(gave_up.is_err(), "the script was still running");
        insert(&db, 2, "next")
            .await
            .expect("the next script begins its own transaction");
        assert_eq!(notes(&db).await, ["next"]);
    }

    #[tokio::test]
    async fn a_statement_that_does_not_parse_is_rolled_back_too() {
        let db = one_connection().await;
        // sqlx prepares each statement of a text when it reaches it: BEGIN
        // has run when the broken one is found.
        assert!(
            transaction(&db, "INSERT INTO nowhere;", Vec::new())
                .await
                .is_err()
        );
        insert(&db, 1, "fine")
            .await
            .expect("the connection still works");
        assert_eq!(notes(&db).await, ["fine"]);
    }
}
