//! SQL statements per event, from PostgreSQL's `pg_stat_statements`: its
//! counters are reset just before a timed part and read just after, for the
//! server's database only.
//!
//! The reset is global (every database on that PostgreSQL), which is why the
//! bench wants a PostgreSQL of its own. Without the extension, or on SQLite,
//! the count is simply not available: it never fails a run.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How many statements the report lists per timed part.
pub const TOP: usize = 8;
/// Longest query text shown, in characters.
const QUERY_CHARS: usize = 100;

/// Whether statements can be counted on this run's database.
#[derive(Clone, Debug)]
pub enum Statements {
    /// `postgres://USER@HOST:PORT` (no database): the extension answers there.
    Available(String),
    Unavailable(String),
}

/// One normalized statement of the server's database.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Statement {
    pub calls: u64,
    /// Milliseconds, summed over the calls.
    pub total_exec_time: f64,
    /// Bytes of WAL the calls wrote.
    #[serde(default)]
    pub wal_bytes: f64,
    pub query: String,
}

/// What a timed part's statements came to.
#[derive(Clone, Debug)]
pub enum Count {
    /// Every statement of the database, most called first.
    Counted(Vec<Statement>),
    NotAvailable(String),
}

impl Count {
    pub fn total_calls(&self) -> Option<u64> {
        match self {
            Self::Counted(all) => Some(all.iter().map(|s| s.calls).sum()),
            Self::NotAvailable(_) => None,
        }
    }

    /// Bytes of WAL the statements wrote (not the commit records PostgreSQL
    /// adds, a few dozen bytes each).
    pub fn wal_bytes(&self) -> Option<f64> {
        match self {
            Self::Counted(all) => Some(all.iter().map(|s| s.wal_bytes).sum()),
            Self::NotAvailable(_) => None,
        }
    }
}

impl Statements {
    /// Creates the extension in database `postgres` if need be and checks
    /// that its view answers (it does not when the library is not preloaded).
    pub async fn probe(postgres_url: &str) -> Self {
        let checked = async {
            psql(
                postgres_url,
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
            )
            .await?;
            psql(postgres_url, "SELECT count(*) FROM pg_stat_statements").await
        };
        match checked.await {
            Ok(_) => Self::Available(postgres_url.to_owned()),
            Err(reason) => Self::Unavailable(format!("pg_stat_statements not loaded: {reason}")),
        }
    }

    pub fn sqlite() -> Self {
        Self::Unavailable("SQLite".into())
    }

    /// A line for the report's header.
    pub fn describe(&self) -> String {
        match self {
            Self::Available(_) => {
                "pg_stat_statements (reset before each timed part: for every database)".into()
            }
            Self::Unavailable(reason) => format!("n/a ({reason})"),
        }
    }

    /// Zeroes the counters; `Err` says why statements cannot be counted.
    pub async fn reset(&self) -> Result<(), String> {
        match self {
            Self::Available(url) => psql(url, "SELECT pg_stat_statements_reset()")
                .await
                .map(drop),
            Self::Unavailable(reason) => Err(reason.clone()),
        }
    }

    /// What `database` ran since the reset; `reset` is what it returned.
    pub async fn read(&self, database: Option<&str>, reset: Result<(), String>) -> Count {
        let counted = async {
            reset?;
            let (Self::Available(url), Some(database)) = (self, database) else {
                return Err("no PostgreSQL database".to_owned());
            };
            // One JSON value is simpler to take apart than psql's table,
            // since query texts hold newlines and any separator.
            let sql = format!(
                "SELECT coalesce(json_agg(s ORDER BY s.calls DESC), '[]') FROM ( \
                 SELECT calls, total_exec_time, wal_bytes, query FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{database}')) s"
            );
            let text = psql(url, &sql).await?;
            let value: Value = serde_json::from_str(text.trim())
                .map_err(|err| format!("unexpected pg_stat_statements answer: {err}"))?;
            serde_json::from_value::<Vec<Statement>>(value)
                .map_err(|err| format!("unexpected pg_stat_statements rows: {err}"))
        };
        match counted.await {
            Ok(all) => Count::Counted(all),
            Err(reason) => Count::NotAvailable(reason),
        }
    }
}

/// A query's text on one line, cut to [`QUERY_CHARS`].
pub fn short_query(query: &str) -> String {
    let one_line = query.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= QUERY_CHARS {
        return one_line;
    }
    let cut: String = one_line.chars().take(QUERY_CHARS - 1).collect();
    format!("{cut}…")
}

/// Runs `sql` in database `postgres`; its unaligned output, or psql's error.
async fn psql(server: &str, sql: &str) -> Result<String, String> {
    let output = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .arg(format!("{server}/postgres"))
        .output()
        .await
        .map_err(|err| format!("running psql: {err}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(stderr.trim().trim_start_matches("ERROR:").trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::short_query;

    #[test]
    fn queries_are_shown_on_one_line_and_cut() {
        assert_eq!(short_query("SELECT 1\n  FROM t"), "SELECT 1 FROM t");
        let long = format!("SELECT {}", "x, ".repeat(60));
        let short = short_query(&long);
        assert_eq!(short.chars().count(), 100);
        assert!(short.ends_with('…'));
    }
}
