//! The fault suite: hookline under crashes, outages and misbehaving
//! receivers, counting events published, delivered, lost (must be 0) and
//! duplicated. Each scenario adds a row to a report written to
//! `target/tmp/fault-report.md`, which `.ci/run` prints.

#[path = "../support/mod.rs"]
mod support;

mod disk_full;
mod failover;
mod feed_race;
mod poison_body;
mod private_pg;
mod read_replica;
mod token_expiry;

use std::{
    collections::{HashMap, HashSet},
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};
use support::{
    GqlExt,
    app::fresh_database,
    eventually,
    fixtures::*,
    gql::Gql,
    jwt::admin_token,
    process::ServerProcess,
    receiver::{Receiver, Reply},
    types::{Attempt, Delivery, Page},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// One scenario's figures.
struct Tally {
    scenario: &'static str,
    published: usize,
    delivered: usize,
    duplicated: usize,
    notes: String,
}

impl Tally {
    fn of(
        scenario: &'static str,
        published: &HashSet<String>,
        arrived: &[String],
        notes: String,
    ) -> Self {
        let unique: HashSet<&String> = arrived.iter().collect();
        Self {
            scenario,
            published: published.len(),
            delivered: published.iter().filter(|id| unique.contains(id)).count(),
            duplicated: arrived.len() - unique.len(),
            notes,
        }
    }

    /// A scenario that could not run here; `why` starts with "skipped: ".
    fn skipped(scenario: &'static str, why: &str) -> Self {
        Self {
            scenario,
            published: 0,
            delivered: 0,
            duplicated: 0,
            notes: why.to_owned(),
        }
    }

    fn lost(&self) -> usize {
        self.published - self.delivered
    }

    /// Prints the row and appends it to the report; fails on any loss.
    fn report(self) {
        let row = format!(
            "| {} | {} | {} | {} | {} | {} |",
            self.scenario,
            self.published,
            self.delivered,
            self.lost(),
            self.duplicated,
            self.notes
        );
        eprintln!("{row}");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-report.md");
        let fresh = !path.exists();
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("report file");
        if fresh {
            let _ = writeln!(
                file,
                "| scenario | published | delivered | lost | duplicated | notes |\n|---|---|---|---|---|---|"
            );
        }
        let _ = writeln!(file, "{row}");
        assert_eq!(self.lost(), 0, "{}: events lost", self.scenario);
    }
}

fn webhook_ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect()
}

async fn publish_batch(
    gql: &Gql,
    token: &str,
    from: usize,
    count: usize,
) -> Result<Vec<String>, Value> {
    let inputs: Vec<Value> = (from..from + count)
        .map(|n| json!({ "type": "conversion.created", "data": { "n": n } }))
        .collect();
    let body = gql
        .run(Some(token), "mutation($inputs: [PublishEventInput!]!) { publishEvents(inputs: $inputs) { event { id } } }", json!({ "inputs": inputs }))
        .await;
    match body["data"]["publishEvents"].as_array() {
        Some(results) => Ok(results
            .iter()
            .map(|r| r["event"]["id"].as_str().expect("id").to_owned())
            .collect()),
        None => Err(body["errors"][0].clone()),
    }
}

async fn wait_all(
    what: &str,
    published: &HashSet<String>,
    receivers: &[&Receiver],
    within: Duration,
) {
    eventually(what, within, || async {
        let got: HashSet<String> = receivers.iter().flat_map(|r| webhook_ids(r)).collect();
        published.is_subset(&got).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_and_restarted() {
    let (url, _dir) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(|_| Reply::Slow(Duration::from_millis(30))).await;
    let token = admin_token("acme");
    let mut first = ServerProcess::start(&url, logs.path(), &["--endpoint-concurrency", "4"]);
    let gql = Gql::new(first.graphql_url());
    create_webhook(&gql, &token, fast_webhook(&receiver.url, &["*"], 10)).await;
    let mut published = HashSet::new();
    for start in (0..300).step_by(100) {
        published.extend(
            publish_batch(&gql, &token, start, 100)
                .await
                .expect("published"),
        );
    }
    receiver.wait_for(30, Duration::from_secs(20)).await;
    first.kill();
    let before = receiver.count();
    let _second = ServerProcess::start(&url, logs.path(), &["--endpoint-concurrency", "16"]);
    wait_all(
        "all events after the restart",
        &published,
        &[&receiver],
        Duration::from_secs(60),
    )
    .await;
    // Time for a duplicate to arrive, to be counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let notes = format!(
        "SIGKILL after {before} arrivals; the restart took over the dead instance's claims"
    );
    Tally::of(
        "(a) SIGKILL mid-run, restart",
        &published,
        &webhook_ids(&receiver),
        notes,
    )
    .report();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_down_for_a_while_then_back() {
    let (url, _dir) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let token = admin_token("acme");
    let server = ServerProcess::start(&url, logs.path(), &[]);
    let gql = Gql::new(server.graphql_url());
    let ports: Vec<u16> = (0..3)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .expect("port")
                .local_addr()
                .expect("addr")
                .port()
        })
        .collect();
    for port in &ports {
        let mut input = fast_webhook(&format!("http://127.0.0.1:{port}/hook"), &["*"], 30);
        input["retryPolicy"] =
            json!({ "maxAttempts": 30, "initialIntervalMs": 100, "maxIntervalMs": 800 });
        create_webhook(&gql, &token, input).await;
    }
    let published: HashSet<String> = publish_batch(&gql, &token, 0, 100)
        .await
        .expect("published")
        .into_iter()
        .collect();
    // Nothing listens for two seconds: every attempt is refused.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut receivers = Vec::new();
    for port in ports {
        receivers.push(Receiver::start_on(port, |_| Reply::Status(200)).await);
    }
    let all: Vec<&Receiver> = receivers.iter().collect();
    for receiver in &all {
        wait_all(
            "every event at every endpoint",
            &published,
            &[receiver],
            Duration::from_secs(30),
        )
        .await;
    }
    let stats = wait_stats(
        &gql,
        &token,
        "every delivery recorded",
        Duration::from_secs(30),
        |s| s.succeeded == 3 * published.len() as u64,
    )
    .await;
    // Time for a duplicate to arrive, to be counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let notes = format!(
        "3 endpoints refused connections for 2 s; {} deliveries succeeded after {} attempts",
        stats.succeeded, stats.attempts
    );
    let arrived: Vec<String> = all.iter().flat_map(|r| webhook_ids(r)).collect();
    // Three endpoints each get every event once: count per endpoint.
    let mut tally = Tally::of(
        "(b) all endpoints down 2 s, then back",
        &published,
        &arrived,
        notes,
    );
    tally.duplicated = arrived.len() - 3 * published.len();
    tally.report();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_mid_run_and_restarted() {
    let Some(pg) = tokio::task::spawn_blocking(private_pg::PrivatePostgres::start)
        .await
        .expect("start")
    else {
        panic!("PostgreSQL's server binaries (initdb, pg_ctl) are needed: install postgresql");
    };
    let pg = Arc::new(pg);
    let logs = tempfile::tempdir().expect("tempdir");
    let token = admin_token("acme");
    let receiver = Receiver::ok().await;
    let server = ServerProcess::start(&pg.url(), logs.path(), &[]);
    let gql = Gql::new(server.graphql_url());
    create_webhook(&gql, &token, fast_webhook(&receiver.url, &["*"], 30)).await;

    let acknowledged: Arc<Mutex<HashSet<String>>> = Arc::default();
    let refusals: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let publisher = {
        let (gql, token, acknowledged, refusals) = (
            gql.clone(),
            token.clone(),
            acknowledged.clone(),
            refusals.clone(),
        );
        tokio::spawn(async move {
            for round in 0..150 {
                match publish_batch(&gql, &token, round * 10, 10).await {
                    Ok(ids) => acknowledged.lock().expect("lock").extend(ids),
                    Err(error) => {
                        let code = error.code().to_owned();
                        *refusals.lock().expect("lock").entry(code).or_default() += 1;
                    }
                }
                // Paced, so that publishing spans the outage.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    eventually(
        "publishing and delivering under way",
        Duration::from_secs(30),
        || async {
            let acknowledged = acknowledged.lock().expect("lock").len();
            (acknowledged >= 200 && receiver.count() > 0).then_some(())
        },
    )
    .await;
    // Killed while attempts are being sent and recorded: connections drop
    // mid-statement and commits' answers may be lost.
    let stopper = pg.clone();
    tokio::task::spawn_blocking(move || stopper.kill())
        .await
        .expect("kill");
    let ready = format!("http://{}/readyz", server.addr);
    let mut saw_not_ready = false;
    for _ in 0..20 {
        if reqwest::get(&ready).await.is_ok_and(|r| r.status() == 503) {
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Longer than the 5 s a request waits for a connection: publishes made
    // during the outage must be refused, not acknowledged.
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let starter = pg.clone();
    tokio::task::spawn_blocking(move || starter.start_again())
        .await
        .expect("start again");
    publisher.await.expect("publisher");
    assert!(
        saw_not_ready,
        "/readyz reported not ready while the database was down"
    );

    let published = acknowledged.lock().expect("lock").clone();
    wait_all(
        "every acknowledged event after the restart",
        &published,
        &[&receiver],
        Duration::from_secs(60),
    )
    .await;
    eventually("/readyz ready again", Duration::from_secs(10), || async {
        reqwest::get(&ready)
            .await
            .is_ok_and(|r| r.status() == 200)
            .then_some(())
    })
    .await;
    // Every delivery settles: none left PENDING or RETRYING by a write whose
    // answer was lost.
    eventually(
        "every delivery SUCCEEDED after the restart",
        Duration::from_secs(60),
        || async {
            let stats = delivery_stats(&gql, &token).await;
            (stats.pending == 0 && stats.retrying == 0 && stats.succeeded >= published.len() as u64)
                .then_some(())
        },
    )
    .await;
    // Time for a duplicate to arrive, to be counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refusals = refusals.lock().expect("lock").clone();
    assert!(
        !refusals.is_empty(),
        "publishing during the outage was refused"
    );
    assert!(
        refusals.keys().all(|code| code == "UNAVAILABLE"),
        "an outage is reported as UNAVAILABLE (retryable), never a false acknowledgement: {refusals:?}"
    );
    let notes = format!(
        "private PostgreSQL killed (immediate shutdown) mid-run for ~7 s while attempts were recorded; publishes refused meanwhile: {refusals:?}; /readyz said 503; afterwards none PENDING or RETRYING"
    );
    let arrived = webhook_ids(&receiver);
    let unexpected = arrived.iter().filter(|id| !published.contains(*id)).count();
    let mut tally = Tally::of(
        "(c) PostgreSQL killed mid-run, restarted",
        &published,
        &arrived,
        notes,
    );
    // An event whose commit succeeded but whose answer was lost with the
    // connection arrives without having been acknowledged: not a duplicate.
    tally.duplicated = arrived.len() - unexpected - tally.delivered;
    tally.report();
    let _ = pg.data_dir();
}

/// Resets the connection (RST, no answer) of the first `resets` requests and
/// answers 200 to the rest, recording each answered request's `webhook-id`.
/// Requests are counted, not connections: the HTTP client may open a
/// connection it never sends on (a connect raced against its idle pool), and
/// resetting that one would be a reset no attempt ever saw.
async fn resetting_receiver(resets: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let requests = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let log = log.clone();
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() < head_end + 4 + length {
                        continue;
                    }
                    if requests.fetch_add(1, Ordering::SeqCst) < resets {
                        #[expect(
                            deprecated,
                            reason = "SO_LINGER 0 is how a test sends a TCP reset"
                        )]
                        let _ = socket.set_linger(Some(Duration::ZERO));
                        return;
                    }
                    let id = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .starts_with("webhook-id:")
                                .then(|| l[11..].trim().to_owned())
                        })
                        .unwrap_or_default();
                    log.lock().expect("log").push(id);
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    request.clear();
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_that_hang_flood_or_reset() {
    let (url, _dir) = fresh_database().await;
    let logs = tempfile::tempdir().expect("tempdir");
    let token = admin_token("acme");
    let server = ServerProcess::start(&url, logs.path(), &[]);
    let gql = Gql::new(server.graphql_url());
    let hangs_first = Receiver::start(|n| {
        if n < 5 {
            Reply::Hang
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let floods = Receiver::start(|_| Reply::Body(10 * 1024 * 1024)).await;
    let (reset_url, reset_log) = resetting_receiver(5).await;
    for (endpoint, timeout) in [
        (hangs_first.url.as_str(), 500),
        (floods.url.as_str(), 5_000),
        (reset_url.as_str(), 2_000),
    ] {
        let mut input = fast_webhook(endpoint, &["*"], 10);
        input["timeoutMs"] = json!(timeout);
        create_webhook(&gql, &token, input).await;
    }
    let published: HashSet<String> = publish_batch(&gql, &token, 0, 20)
        .await
        .expect("published")
        .into_iter()
        .collect();
    wait_all(
        "every event at the hanging receiver",
        &published,
        &[&hangs_first],
        Duration::from_secs(60),
    )
    .await;
    wait_all(
        "every event at the flooding receiver",
        &published,
        &[&floods],
        Duration::from_secs(60),
    )
    .await;
    eventually(
        "every event at the resetting receiver",
        Duration::from_secs(60),
        || async {
            let got: HashSet<String> = reset_log.lock().expect("log").iter().cloned().collect();
            published.is_subset(&got).then_some(())
        },
    )
    .await;
    wait_stats(
        &gql,
        &token,
        "all deliveries recorded",
        Duration::from_secs(30),
        |s| s.succeeded == 60,
    )
    .await;

    // What the log says about each kind of misbehaviour.
    let deliveries: Page<Delivery> = gql
        .field(&token, "{ deliveries(first: 100) { edges { node { attempts { errorKind responseStatus responseBody } } } } }", json!({}))
        .await;
    let all: Vec<&Attempt> = deliveries
        .items()
        .into_iter()
        .flat_map(|delivery| &delivery.attempts)
        .collect();
    let count = |kind: &str| {
        all.iter()
            .filter(|a| a.error_kind.as_deref() == Some(kind))
            .count()
    };
    let longest_body = all
        .iter()
        .filter_map(|a| a.response_body.as_deref())
        .map(str::len)
        .max()
        .unwrap_or(0);
    assert!(count("TIMEOUT") >= 5, "hangs were recorded as timeouts");
    assert!(
        count("CONNECTION") >= 5,
        "resets were recorded as connection errors"
    );
    assert!(
        longest_body <= 4096,
        "only the first 4 KiB of a 10 MB body is kept"
    );
    let rss_mb = std::fs::read_to_string(format!("/proc/{}/status", server.child.id()))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
                    / 1024
            })
        })
        .unwrap_or(0);

    let mut arrived = webhook_ids(&hangs_first);
    arrived.extend(webhook_ids(&floods));
    arrived.extend(reset_log.lock().expect("log").iter().cloned());
    let notes = format!(
        "hang (500 ms timeout) ×5 → {} TIMEOUT attempts; 10 MB bodies → kept {longest_body} B, server RSS {rss_mb} MB; \
         TCP reset ×5 → {} CONNECTION attempts",
        count("TIMEOUT"),
        count("CONNECTION")
    );
    let mut tally = Tally::of(
        "(d) receivers hang / send 10 MB / reset",
        &published,
        &arrived,
        notes,
    );
    // A hung request's receiver saw it, then the retry: those are expected repeats.
    tally.duplicated = arrived.len() - 3 * published.len();
    tally.report();
}
