//! PostgreSQL pools, on the host the URL's list makes the primary (see
//! `primary`), built with sqlx directly: sea-orm's own connect parses the
//! URL with sqlx, which takes one host only.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use sea_orm::{
    DatabaseConnection, SqlxPostgresConnector,
    sqlx::{Connection as _, pool::PoolConnectionMetadata, postgres::PgPoolOptions},
};

use super::{
    outside_transaction,
    pg_url::PgTarget,
    primary::{self, Pooled, Primary, Settings},
};

/// The readers' sessions: read-only, and a query may run this long before
/// it is cancelled (it is then `UNAVAILABLE`).
const READER_SETTINGS: Settings = &[
    ("default_transaction_read_only", "on"),
    ("statement_timeout", "30s"),
];

/// Opens the writers' and the readers' pools on the primary and, when the
/// URL allows a failover, starts the watcher that moves them.
pub async fn connect(
    url: &str,
    shown: &str,
    writers: u32,
    readers: u32,
) -> anyhow::Result<(DatabaseConnection, DatabaseConnection)> {
    let target = PgTarget::parse(url)
        .map_err(|why| anyhow::anyhow!("invalid PostgreSQL URL {shown}: {why}"))?;
    let (chosen, watcher_conn) = if target.can_fail_over() {
        let (chosen, conn) = primary::find(&target)
            .await
            .map_err(|reasons| anyhow::anyhow!("no PostgreSQL primary at {shown}: {reasons}"))?;
        (chosen, Some(conn))
    } else {
        (0, None)
    };
    let failover = target.can_fail_over();
    let primary = Primary::new(target, chosen);
    let write = pool(&primary, writers, &[], failover)
        .await
        .with_context(|| format!("connecting to {shown}"))?;
    let read = pool(&primary, readers, READER_SETTINGS, failover)
        .await
        .with_context(|| format!("opening read-only connections to {shown}"))?;
    if failover {
        let pools = vec![
            Pooled {
                pool: write.clone(),
                settings: &[],
            },
            Pooled {
                pool: read.clone(),
                settings: READER_SETTINGS,
            },
        ];
        tokio::spawn(primary::watch(primary, pools, watcher_conn));
    }
    Ok((
        SqlxPostgresConnector::from_sqlx_postgres_pool(write),
        SqlxPostgresConnector::from_sqlx_postgres_pool(read),
    ))
}

/// A pooled connection idle at least this long is pinged before it is
/// used: only a connection left alone that long may have been dropped by the
/// server or something in between meanwhile. A busy one is not pinged, since
/// the ping is a round trip of its own before every statement (sqlx's
/// default), about as costly for the server as a small statement.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(10);

/// One pool of at most `size` connections with `settings`. With a
/// failover watcher, a new connection is checked before use, and a pooled
/// one opened before the primary last changed is closed when taken or
/// handed back.
async fn pool(
    primary: &Arc<Primary>,
    size: u32,
    settings: Settings,
    failover: bool,
) -> Result<sea_orm::sqlx::PgPool, sea_orm::sqlx::Error> {
    let options = PgPoolOptions::new()
        .max_connections(size)
        .min_connections(if settings.is_empty() { 2 } else { 0 })
        // A request waits this long for a connection before it is told the
        // database is unavailable.
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false);
    let reader = !settings.is_empty();
    let connect_options = primary.options(primary.chosen(), settings);
    if !failover {
        return options
            .before_acquire(|conn, meta| Box::pin(ping_if_idle(conn, meta)))
            .after_release(|conn, _| Box::pin(outside_transaction(conn)))
            .connect_with(connect_options)
            .await;
    }
    let (on_connect, on_acquire, on_release) = (primary.clone(), primary.clone(), primary.clone());
    options
        .after_connect(move |conn, _| {
            let primary = on_connect.clone();
            Box::pin(async move { primary.accept(conn, reader).await })
        })
        .before_acquire(move |conn, meta| {
            let current = on_acquire.is_current(&meta);
            Box::pin(async move { Ok(current && ping_if_idle(conn, meta).await?) })
        })
        .after_release(move |conn, meta| {
            let current = on_release.is_current(&meta);
            Box::pin(async move {
                if !current {
                    return Ok(false);
                }
                outside_transaction(conn).await
            })
        })
        .connect_with(connect_options)
        .await
}

/// Whether a pooled connection may be used: yes, once it answers a ping
/// if it has been idle for [`PING_WHEN_IDLE_FOR`]. One that does not answer
/// is closed and the pool opens another.
async fn ping_if_idle(
    conn: &mut sea_orm::sqlx::PgConnection,
    meta: PoolConnectionMetadata,
) -> Result<bool, sea_orm::sqlx::Error> {
    if meta.idle_for >= PING_WHEN_IDLE_FOR {
        conn.ping().await?;
    }
    Ok(true)
}

/// One connection to the primary, as a sea-orm connection (migrations under
/// their advisory lock).
pub async fn single(url: &str, shown: &str) -> anyhow::Result<DatabaseConnection> {
    let target = PgTarget::parse(url)
        .map_err(|why| anyhow::anyhow!("invalid PostgreSQL URL {shown}: {why}"))?;
    let chosen = if target.can_fail_over() {
        let (chosen, conn) = primary::find(&target)
            .await
            .map_err(|reasons| anyhow::anyhow!("no PostgreSQL primary at {shown}: {reasons}"))?;
        conn.close().await.ok();
        chosen
    } else {
        0
    };
    let primary = Primary::new(target, chosen);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(primary.options(primary.chosen(), &[]))
        .await
        .with_context(|| format!("connecting to {shown}"))?;
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}
