//! "primary failover mid-run": hookline on a pg_auto_failover formation
//! (a monitor and two nodes, `pg_auto_failover.sh`), given the libpq
//! multi-host URL with `target_session_attrs=read-write`, publishing and
//! delivering while the monitor fails the primary over to the standby.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use sea_orm::sqlx::{ConnectOptions as _, Connection as _, postgres::PgConnectOptions};

use super::{Tally, publish_batch, wait_all, webhook_ids};
use crate::support::{
    GqlExt, eventually, fixtures::*, gql::Gql, jwt::admin_token, process::ServerProcess,
    receiver::Receiver,
};

/// The formation, stopped and removed on drop.
struct Formation {
    script: PathBuf,
    dir: PathBuf,
    _parent: tempfile::TempDir,
    nodes: [u16; 2],
}

impl Formation {
    /// Starts it, or says why it cannot run here (`Err("skipped: …")`).
    fn start() -> Result<Self, String> {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/faults/pg_auto_failover.sh");
        let parent = tempfile::tempdir().expect("tempdir");
        // pg_autoctl runs as `postgres` when the tests run as root: it must
        // reach the directory.
        let _ = Command::new("chmod").arg("755").arg(parent.path()).status();
        let dir = parent.path().join("formation");
        let out = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .output()
            .expect("run pg_auto_failover.sh");
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if out.status.code() == Some(3) {
            let why = stderr.lines().rfind(|l| l.starts_with("skipped: "));
            return Err(why
                .unwrap_or("skipped: pg_auto_failover cannot run here")
                .to_owned());
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let ports: Vec<u16> = stdout
            .lines()
            .find_map(|l| l.strip_prefix("ports "))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let mut formation = Self {
            script,
            dir,
            _parent: parent,
            nodes: [0, 0],
        };
        // Stopped (on drop) even when it did not start completely.
        assert!(
            out.status.success() && ports.len() == 3,
            "pg_auto_failover.sh start failed: {stdout}\n{stderr}"
        );
        formation.nodes = [ports[1], ports[2]];
        Ok(formation)
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
            self.nodes[0], self.nodes[1]
        )
    }

    /// Asks the monitor to fail the primary over (a switchover: the old
    /// primary is demoted and comes back as the standby).
    fn failover(&self) {
        let status = Command::new(&self.script)
            .arg("failover")
            .arg(&self.dir)
            .status()
            .expect("failover");
        assert!(status.success(), "pg_autoctl perform failover failed");
    }
}

impl Drop for Formation {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

/// Which node is a writable primary, seen from outside, every 100 ms.
#[derive(Default)]
struct Timeline {
    samples: Mutex<Vec<(Instant, Option<u16>)>>,
}

impl Timeline {
    async fn watch(self: Arc<Self>, nodes: [u16; 2], stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            let mut primary = None;
            for port in nodes {
                if is_primary(port).await {
                    primary = Some(port);
                }
            }
            self.samples
                .lock()
                .expect("lock")
                .push((Instant::now(), primary));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The longest run of samples without a primary, after `from`: when it
    /// began and when a primary was seen again.
    fn gap(&self, from: Instant) -> Option<(Instant, Instant)> {
        let samples = self.samples.lock().expect("lock");
        let mut gaps = Vec::new();
        let mut began = None;
        for (at, primary) in samples.iter().filter(|(at, _)| *at >= from) {
            match (primary, began) {
                (None, None) => began = Some(*at),
                (Some(_), Some(start)) => {
                    gaps.push((start, *at));
                    began = None;
                }
                _ => {}
            }
        }
        gaps.into_iter().max_by_key(|(a, b)| *b - *a)
    }
}

async fn is_primary(port: u16) -> bool {
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
        .database("postgres")
        .disable_statement_logging();
    let check = async {
        let mut conn = options.connect().await.ok()?;
        let (in_recovery, read_only): (bool, bool) = sea_orm::sqlx::query_as(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'",
        )
        .fetch_one(&mut conn)
        .await
        .ok()?;
        conn.close().await.ok();
        Some(!in_recovery && !read_only)
    };
    tokio::time::timeout(Duration::from_millis(500), check)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// What the publisher saw: acknowledged ids with when, refusals by code.
#[derive(Default)]
struct Publishing {
    acknowledged: Mutex<HashMap<String, Instant>>,
    refusals: Mutex<HashMap<String, usize>>,
    refused_at: Mutex<Vec<Instant>>,
    sent: Mutex<usize>,
}

async fn publish_until(gql: Gql, token: String, seen: Arc<Publishing>, stop: Arc<AtomicBool>) {
    let mut round = 0;
    while !stop.load(Ordering::Relaxed) {
        let result = publish_batch(&gql, &token, round * 10, 10).await;
        *seen.sent.lock().expect("lock") += 10;
        match result {
            Ok(ids) => {
                let now = Instant::now();
                let mut acknowledged = seen.acknowledged.lock().expect("lock");
                acknowledged.extend(ids.into_iter().map(|id| (id, now)));
            }
            Err(error) => {
                let code = error.code().to_owned();
                *seen.refusals.lock().expect("lock").entry(code).or_default() += 1;
                seen.refused_at.lock().expect("lock").push(Instant::now());
            }
        }
        round += 1;
        // Paced, so that publishing spans the failover.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_failover_mid_run() {
    let formation = match tokio::task::spawn_blocking(Formation::start)
        .await
        .expect("start")
    {
        Ok(formation) => formation,
        Err(why) => {
            eprintln!("primary failover mid-run {why}");
            Tally::skipped("(g) primary failover mid-run", &why).report();
            return;
        }
    };
    let formation = Arc::new(formation);
    let logs = tempfile::tempdir().expect("tempdir");
    let token = admin_token("acme");
    let receiver = Receiver::ok().await;
    let server = ServerProcess::start(&formation.url(), logs.path(), &[]);
    let gql = Gql::new(server.graphql_url());
    create_webhook(&gql, &token, fast_webhook(&receiver.url, &["*"], 30)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let timeline = Arc::new(Timeline::default());
    let watcher = tokio::spawn(timeline.clone().watch(formation.nodes, stop.clone()));
    let seen = Arc::new(Publishing::default());
    let publisher = tokio::spawn(publish_until(
        gql.clone(),
        token.clone(),
        seen.clone(),
        stop.clone(),
    ));
    eventually(
        "publishing and delivering under way",
        Duration::from_secs(30),
        || async {
            let acknowledged = seen.acknowledged.lock().expect("lock").len();
            (acknowledged >= 200 && receiver.count() > 0).then_some(())
        },
    )
    .await;
    let failover_at = Instant::now();
    let switcher = formation.clone();
    tokio::task::spawn_blocking(move || switcher.failover())
        .await
        .expect("failover");
    // Until the new primary takes publishes, and 5 s more of traffic on it.
    let (lost_at, back_at) = eventually("a new primary", Duration::from_secs(60), || async {
        timeline.gap(failover_at)
    })
    .await;
    eventually(
        "a publish acknowledged by the new primary",
        Duration::from_secs(60),
        || async {
            let acknowledged = seen.acknowledged.lock().expect("lock");
            acknowledged.values().any(|at| *at > back_at).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    publisher.await.expect("publisher");
    watcher.await.expect("watcher");
    settle_and_report(
        &gql,
        &token,
        &receiver,
        &seen,
        lost_at,
        back_at,
        failover_at,
    )
    .await;
    let log = server.log();
    for line in log.lines().filter(|l| l.contains("primary")) {
        eprintln!("hookline: {line}");
    }
    let switched = formation
        .nodes
        .iter()
        .any(|port| log.contains(&format!("the PostgreSQL primary is now 127.0.0.1:{port}")));
    assert!(switched, "hookline found the new primary by itself:\n{log}");
    drop(server);
}

async fn settle_and_report(
    gql: &Gql,
    token: &str,
    receiver: &Receiver,
    seen: &Publishing,
    lost_at: Instant,
    back_at: Instant,
    failover_at: Instant,
) {
    let acknowledged = seen.acknowledged.lock().expect("lock").clone();
    let published: HashSet<String> = acknowledged.keys().cloned().collect();
    wait_all(
        "every acknowledged event after the failover",
        &published,
        &[receiver],
        Duration::from_secs(90),
    )
    .await;
    // Every delivery settles: none left PENDING or RETRYING, no claim stuck
    // with the connection that held it.
    eventually(
        "every delivery SUCCEEDED after the failover",
        Duration::from_secs(90),
        || async {
            let stats = delivery_stats(gql, token).await;
            (stats.pending == 0 && stats.retrying == 0 && stats.succeeded >= published.len() as u64)
                .then_some(())
        },
    )
    .await;
    // Time for a duplicate to arrive, to be counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refusals = seen.refusals.lock().expect("lock").clone();
    assert!(
        refusals.keys().all(|code| code == "UNAVAILABLE"),
        "no primary is UNAVAILABLE (retryable), never INTERNAL nor a false acknowledgement: {refusals:?}"
    );
    // Deliveries resumed: the first arrival of an event acknowledged by
    // the new primary.
    let arrivals = receiver.received();
    let resumed = arrivals
        .iter()
        .filter(|r| {
            acknowledged
                .get(r.header("webhook-id"))
                .is_some_and(|at| *at > back_at)
        })
        .map(|r| r.at)
        .min()
        .expect("an event published after the failover arrived");
    let refused_at = seen.refused_at.lock().expect("lock").clone();
    let refused_for = match (refused_at.first(), refused_at.last()) {
        (Some(first), Some(last)) => *last - *first,
        _ => Duration::ZERO,
    };
    let sent = *seen.sent.lock().expect("lock");
    let notes = format!(
        "pg_auto_failover switchover (monitor + 2 nodes), URL with both hosts and target_session_attrs=read-write; \
         {sent} events sent, {} acknowledged, refused meanwhile: {refusals:?} over {:.1} s; \
         without a primary {:.1} s (from {:.1} s after the failover was asked); \
         deliveries resumed {:.1} s after the new primary appeared; afterwards none PENDING or RETRYING",
        published.len(),
        refused_for.as_secs_f64(),
        (back_at - lost_at).as_secs_f64(),
        (lost_at - failover_at).as_secs_f64(),
        resumed.saturating_duration_since(back_at).as_secs_f64(),
    );
    let arrived = webhook_ids(receiver);
    let unexpected = arrived.iter().filter(|id| !published.contains(*id)).count();
    let mut tally = Tally::of("(g) primary failover mid-run", &published, &arrived, notes);
    // An event whose commit landed but whose answer was lost with the
    // connection arrives without having been acknowledged: not a duplicate.
    tally.duplicated = arrived.len() - unexpected - tally.delivered;
    tally.report();
}
