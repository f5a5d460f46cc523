//! Finding the PostgreSQL primary among the URL's hosts, and finding it
//! again after a failover.
//!
//! Both pools (writers and readers) connect to the host chosen here. A
//! watcher keeps one connection of its own to that host and checks every
//! second that it still suits (`target_session_attrs`); when it does not
//! (the server went away, or came back read-only: a demoted primary), the
//! watcher looks for the host that does, every 250 ms, and points the pools
//! at it. Every pooled connection older than the last change is closed the
//! next time it is taken or handed back, so nothing is written through a
//! connection to a demoted server; a new connection is checked before use
//! as well. Until a primary is found, requests wait for a connection and
//! then answer `UNAVAILABLE`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::sqlx::{
    self, ConnectOptions as _, Connection as _,
    pool::PoolConnectionMetadata,
    postgres::{PgConnectOptions, PgConnection, PgPool},
};
use tokio::sync::Notify;

use super::pg_url::{Host, PgTarget, SessionAttrs};

/// How many times a primary changed in this process, for connections kept
/// outside the pools (`db::Kept`): one taken before a change is not used
/// after it. Counted for the whole process, so a change of one database
/// also retires what is kept for another: harmless, and simple.
static CHANGES: AtomicU64 = AtomicU64::new(0);

/// See [`CHANGES`].
pub fn changes() -> u64 {
    CHANGES.load(Ordering::Relaxed)
}

/// How long one host may take to accept a connection and answer.
const HOST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the chosen host is checked while it suits.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often the hosts are searched while none suits.
const SEARCH_EVERY: Duration = Duration::from_millis(250);

/// Session settings (`SET` at connection) of one pool's connections.
pub type Settings = &'static [(&'static str, &'static str)];

/// A pool the watcher points at the chosen host, with its settings.
pub struct Pooled {
    pub pool: PgPool,
    pub settings: Settings,
}

/// What the pools and the watcher share.
pub struct Primary {
    pub target: PgTarget,
    chosen: AtomicUsize,
    /// When the chosen host last changed or was lost, in milliseconds since
    /// `origin`: connections older than that are closed.
    changed_ms: AtomicU64,
    origin: Instant,
    /// Rung when a new connection found its server unsuitable.
    recheck: Notify,
}

impl Primary {
    pub fn new(target: PgTarget, chosen: usize) -> Arc<Self> {
        Arc::new(Self {
            target,
            chosen: AtomicUsize::new(chosen),
            changed_ms: AtomicU64::new(0),
            origin: Instant::now(),
            recheck: Notify::new(),
        })
    }

    pub fn chosen(&self) -> &Host {
        &self.target.hosts[self.chosen.load(Ordering::Relaxed)]
    }

    /// Options for a connection to `host` with `settings`.
    pub fn options(&self, host: &Host, settings: Settings) -> PgConnectOptions {
        let options = self.target.options(host).disable_statement_logging();
        if settings.is_empty() {
            options
        } else {
            options.options(settings.iter().copied())
        }
    }

    fn mark_changed(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.changed_ms.store(now, Ordering::Relaxed);
        CHANGES.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a pooled connection was opened after the last change, and so
    /// to the host chosen now.
    pub fn is_current(&self, meta: &PoolConnectionMetadata) -> bool {
        let since_change = self.origin.elapsed().saturating_sub(Duration::from_millis(
            self.changed_ms.load(Ordering::Relaxed),
        ));
        meta.age <= since_change
    }

    /// Checks a new pool connection (`reader`: a read-only session, which
    /// only needs the server not to be a standby). An unsuitable server
    /// fails the connection, and the pool tries again on the options the
    /// watcher sets meanwhile.
    pub async fn accept(&self, conn: &mut PgConnection, reader: bool) -> Result<(), sqlx::Error> {
        let attrs = match self.target.attrs {
            SessionAttrs::ReadWrite if reader => SessionAttrs::Primary,
            attrs => attrs,
        };
        match suits(conn, attrs).await? {
            Ok(()) => Ok(()),
            Err(why) => {
                self.recheck.notify_one();
                Err(sqlx::Error::Io(std::io::Error::other(format!(
                    "{} {why}: waiting for the primary",
                    self.chosen()
                ))))
            }
        }
    }
}

/// Whether the server behind `conn` suits `attrs`: `Ok(Err(why))` if not.
async fn suits(
    conn: &mut PgConnection,
    attrs: SessionAttrs,
) -> Result<Result<(), &'static str>, sqlx::Error> {
    if attrs == SessionAttrs::Any {
        return conn.ping().await.map(Ok);
    }
    let (in_recovery, read_only): (bool, bool) = sqlx::query_as(
        "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(match attrs {
        _ if in_recovery => Err("is a standby (in recovery)"),
        SessionAttrs::ReadWrite if read_only => Err("is read-only"),
        _ => Ok(()),
    })
}

/// Connects to `host` and checks it, within [`HOST_TIMEOUT`].
async fn try_host(target: &PgTarget, host: &Host) -> Result<PgConnection, String> {
    let attempt = async {
        let mut conn = target
            .options(host)
            .disable_statement_logging()
            .connect()
            .await
            .map_err(|err| super::probe::why(&err, host))?;
        match suits(&mut conn, target.attrs).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(why)) => Err(why.to_owned()),
            Err(err) => Err(super::probe::why(&err, host)),
        }
    };
    tokio::time::timeout(HOST_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", HOST_TIMEOUT.as_secs())))
}

/// The first host, in the URL's order, that accepts a connection and suits
/// `target_session_attrs`, with that connection; otherwise why each did not.
pub async fn find(target: &PgTarget) -> Result<(usize, PgConnection), String> {
    let mut reasons = Vec::new();
    for (index, host) in target.hosts.iter().enumerate() {
        match try_host(target, host).await {
            Ok(conn) => return Ok((index, conn)),
            Err(why) => reasons.push(format!("{host} {why}")),
        }
    }
    Err(reasons.join("; "))
}

/// Keeps `pools` on a suitable host until they are closed (see the module
/// documentation). `conn` is a connection to the chosen host, if one is open.
pub async fn watch(primary: Arc<Primary>, pools: Vec<Pooled>, mut conn: Option<PgConnection>) {
    loop {
        if pools.iter().all(|p| p.pool.is_closed()) {
            return;
        }
        let host = primary.chosen().clone();
        let checked = match conn.as_mut() {
            Some(conn) => tokio::time::timeout(HOST_TIMEOUT, suits(conn, primary.target.attrs))
                .await
                .map_err(|_| "did not answer".to_owned())
                .and_then(|r| r.map_err(|err| super::probe::why(&err, &host)))
                .and_then(|r| r.map_err(str::to_owned)),
            None => try_host(&primary.target, &host).await.map(|fresh| {
                conn = Some(fresh);
            }),
        };
        match checked {
            Ok(()) => {
                tokio::select! {
                    () = tokio::time::sleep(CHECK_EVERY) => {}
                    () = primary.recheck.notified() => {}
                }
            }
            Err(why) => {
                if let Some(old) = conn.take() {
                    let _ = old.close_hard().await;
                }
                conn = search(&primary, &pools, &host, &why).await;
            }
        }
    }
}

/// Looks for a suitable host until one is found (or the pools close), and
/// points the pools at it.
async fn search(
    primary: &Primary,
    pools: &[Pooled],
    lost: &Host,
    why: &str,
) -> Option<PgConnection> {
    primary.mark_changed();
    let since = Instant::now();
    tracing::warn!(
        "the PostgreSQL primary at {lost} is lost ({why}); looking for it among {}",
        primary.target.host_list()
    );
    loop {
        if pools.iter().all(|p| p.pool.is_closed()) {
            return None;
        }
        match find(&primary.target).await {
            Ok((index, conn)) => {
                let host = &primary.target.hosts[index];
                for pool in pools {
                    pool.pool
                        .set_connect_options(primary.options(host, pool.settings));
                }
                primary.chosen.store(index, Ordering::Relaxed);
                primary.mark_changed();
                tracing::warn!(
                    without_primary = ?since.elapsed(),
                    "the PostgreSQL primary is now {host}"
                );
                return Some(conn);
            }
            Err(reasons) => tracing::debug!("no PostgreSQL primary yet: {reasons}"),
        }
        tokio::time::sleep(SEARCH_EVERY).await;
    }
}
