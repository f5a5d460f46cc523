//! One plain connection to the database before anything else is done, so a
//! start that cannot work fails at once with what is actually wrong.
//!
//! A connection pool retries a refused connection until its acquire timeout
//! and then says only "pool timed out"; a single connection says "connection
//! refused", "database does not exist" or "password authentication failed",
//! and that is what an operator needs to read.

use std::{path::Path, str::FromStr, time::Duration};

use sea_orm::sqlx::{
    self, ConnectOptions as _, Connection as _,
    sqlite::{SqliteConnectOptions, SqliteJournalMode},
};

use super::pg_url::{Host, PgTarget};
use crate::error::root_message;

/// How long a PostgreSQL server may take to accept one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens and closes one connection to `url`, or says in one sentence why it
/// cannot. SQLite: the file is created if it is missing (that is the
/// embedded default's first start), but only where it can be.
pub async fn probe(url: &str) -> anyhow::Result<()> {
    let shown = super::redact_url(url);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        probe_postgres(url, &shown).await
    } else if url.starts_with("sqlite:") {
        probe_sqlite(url, &shown).await
    } else {
        anyhow::bail!(
            "unsupported database URL {shown}: use sqlite://FILE (the embedded default) \
             or postgres://USER@HOST:PORT/DATABASE"
        )
    }
}

async fn probe_postgres(url: &str, shown: &str) -> anyhow::Result<()> {
    let target = PgTarget::parse(url)
        .map_err(|why| anyhow::anyhow!("invalid PostgreSQL URL {shown}: {why}"))?;
    if target.can_fail_over() {
        // Several hosts, or one that must be writable: one of them must be
        // the primary now.
        return match super::primary::find(&target).await {
            Ok((_, connection)) => {
                connection.close().await.ok();
                Ok(())
            }
            Err(reasons) => anyhow::bail!(
                "cannot connect to PostgreSQL at {shown}: no host is a primary that suits \
                 target_session_attrs: {reasons}"
            ),
        };
    }
    let host = &target.hosts[0];
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, target.options(host).connect()).await;
    let err = match connected {
        Ok(Ok(connection)) => {
            connection.close().await.ok();
            return Ok(());
        }
        Ok(Err(err)) => err,
        Err(_) => anyhow::bail!(
            "cannot connect to PostgreSQL at {shown}: no answer from {host} within {}s",
            CONNECT_TIMEOUT.as_secs()
        ),
    };
    anyhow::bail!(
        "cannot connect to PostgreSQL at {shown}: {}",
        why(&err, host)
    )
}

/// Why connecting to `host` failed, in words an operator can act on.
pub(super) fn why(err: &sqlx::Error, host: &Host) -> String {
    match err {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused: is PostgreSQL running and listening on {host}?")
        }
        sqlx::Error::Database(db) => {
            let hint = match db.code().as_deref() {
                Some("3D000") => " (create it, e.g. `createdb`, or fix the URL's database name)",
                Some("28P01" | "28000") => " (check the user and password in the URL)",
                _ => "",
            };
            format!("{}{hint}", db.message())
        }
        other => root_message(other),
    }
}

async fn probe_sqlite(url: &str, shown: &str) -> anyhow::Result<()> {
    if let Some(path) = crate::keys::sqlite_file(url)
        && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        anyhow::bail!(
            "cannot open the SQLite database {}: {} is not a directory that exists",
            path.display(),
            dir.display()
        );
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|err| anyhow::anyhow!("invalid SQLite URL {shown}: {}", root_message(&err)))?
        .create_if_missing(true)
        // What the server will use; a file that cannot take WAL fails here.
        .journal_mode(SqliteJournalMode::Wal);
    match options.connect().await {
        Ok(connection) => {
            connection.close().await.ok();
            Ok(())
        }
        Err(err) => {
            let file = crate::keys::sqlite_file(url);
            let name = file
                .as_deref()
                .map_or_else(|| shown.to_owned(), |p| Path::display(p).to_string());
            anyhow::bail!(
                "cannot open the SQLite database {name}: {}",
                root_message(&err)
            )
        }
    }
}
