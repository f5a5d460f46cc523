//! A server whose SQLite database cannot grow: the real binary, started with
//! SIGXFSZ ignored and then given a soft file-size limit (RLIMIT_FSIZE, set
//! with util-linux `prlimit`) a little above what its files hold, so SQLite's
//! writes fail as they would on a full disk. Shared by the publishing tests
//! and the fault suite.

use std::{
    collections::{BTreeMap, HashSet},
    path::Path,
    time::Duration,
};

use serde_json::{Value, json};

use super::{GqlExt, fixtures::*, gql::Gql, jwt::admin_token, process::ServerProcess};

/// Bytes the database files may grow by once the limit is set.
const HEADROOM: u64 = 16 * 1024;
/// Publishes while the files cannot grow: every other one a batch of 5.
const ROUNDS: usize = 120;
/// Single publishes once the limit is lifted.
const AFTER_SPACE: usize = 10;

pub struct DiskFull {
    /// Every event id a publish acknowledged, while full and after.
    pub acknowledged: Vec<String>,
    /// Refused publishes by `extensions.code`.
    pub refused: BTreeMap<String, usize>,
    /// Publishes acknowledged once the limit was lifted, without a restart
    /// (out of `AFTER_SPACE`).
    pub after_space: usize,
    /// Every event id the restarted server lists.
    pub present: Vec<String>,
}

impl DiskFull {
    pub fn refusals(&self) -> usize {
        self.refused.values().sum()
    }

    pub fn missing(&self) -> Vec<&String> {
        let present: HashSet<&String> = self.present.iter().collect();
        self.acknowledged
            .iter()
            .filter(|id| !present.contains(id))
            .collect()
    }
}

/// The largest of the database's files (main file, WAL).
fn largest_file(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("database directory")
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .map(|meta| meta.len())
        .max()
        .unwrap_or(0)
}

async fn publish_round(gql: &Gql, token: &str, round: usize) -> Result<Vec<String>, Value> {
    let data = |n: usize| json!({ "round": round, "n": n, "pad": "x".repeat(500) });
    let body = if round.is_multiple_of(2) {
        let inputs: Vec<Value> = (0..5)
            .map(|n| json!({ "type": "conversion.created", "data": data(n) }))
            .collect();
        gql.run(
            Some(token),
            "mutation($inputs: [PublishEventInput!]!) { publishEvents(inputs: $inputs) { event { id } } }",
            json!({ "inputs": inputs }),
        )
        .await
    } else {
        gql.run(
            Some(token),
            PUBLISH,
            json!({ "input": { "type": "conversion.created", "data": data(0) } }),
        )
        .await
    };
    let published = match &body["data"] {
        Value::Object(data) if data.contains_key("publishEvents") => {
            data["publishEvents"].as_array().cloned()
        }
        Value::Object(data) if data.contains_key("publishEvent") => {
            Some(vec![data["publishEvent"].clone()])
        }
        _ => None,
    };
    match published {
        Some(results) if body.get("errors").is_none() => Ok(results
            .iter()
            .map(|r| r["event"]["id"].as_str().expect("event id").to_owned())
            .collect()),
        _ => Err(body["errors"][0].clone()),
    }
}

/// Every event id the server lists, newest first.
pub async fn all_event_ids(gql: &Gql, token: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = gql
            .ok(
                token,
                "query($after: String) { events(first: 100, after: $after) { nodes { id } pageInfo { endCursor hasNextPage } } }",
                json!({ "after": after }),
            )
            .await;
        let events = &page["events"];
        ids.extend(
            events["nodes"]
                .as_array()
                .expect("nodes")
                .iter()
                .map(|n| n["id"].as_str().expect("id").to_owned()),
        );
        if events["pageInfo"]["hasNextPage"] != json!(true) {
            return ids;
        }
        after = events["pageInfo"]["endCursor"].clone();
    }
}

/// Runs a server on a fresh SQLite file (`extra` arguments added), lets
/// `setup` prepare it (webhooks), publishes until the files cannot grow and
/// beyond, lifts the limit and publishes again, then kills the server and
/// lists the events a fresh server finds in the file. The restarted server
/// is handed back (it runs with `extra` too) with the figures.
pub async fn run<F, Fut>(extra: &[&str], setup: F) -> (DiskFull, ServerProcess, tempfile::TempDir)
where
    F: FnOnce(Gql) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/hookline.db", dir.path().display());
    let token = admin_token("acme");
    // The limit applies to the log file too: keep it short.
    let mut server =
        ServerProcess::start_ignoring_file_size_signal(&url, logs.path(), extra, "info");
    let gql = Gql::new(server.graphql_url());
    setup(gql.clone()).await;
    let mut acknowledged = publish_round(&gql, &token, 1).await.expect("first publish");

    server.limit_file_size(Some(largest_file(dir.path()) + HEADROOM));
    let mut refused = BTreeMap::new();
    for round in 0..ROUNDS {
        match publish_round(&gql, &token, round).await {
            Ok(ids) => acknowledged.extend(ids),
            Err(error) => *refused.entry(error.code().to_owned()).or_insert(0) += 1,
        }
    }

    server.limit_file_size(None);
    let mut after_space = 0;
    for round in 0..AFTER_SPACE {
        // Single publishes (odd rounds).
        if let Ok(ids) = publish_round(&gql, &token, 2 * round + 1).await {
            acknowledged.extend(ids);
            after_space += 1;
        }
    }
    // Reaped, so its file locks are gone: the kernel drops them at exit.
    server.kill();

    let restarted = ServerProcess::start(&url, logs.path(), extra);
    let present = all_event_ids(&Gql::new(restarted.graphql_url()), &token).await;
    let figures = DiskFull {
        acknowledged,
        refused,
        after_space,
        present,
    };
    (figures, restarted, dir)
}

/// `AFTER_SPACE`, for assertions.
pub const PUBLISHES_AFTER_SPACE: usize = AFTER_SPACE;
