//! A pull-feed reader racing concurrent publishers: batches and single
//! publishes commit out of id order while the reader follows `next`. Shared by
//! the feeds tests and the fault suite.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::{fixtures::*, gql::Gql};

pub struct FeedRace {
    /// Every event id a publish acknowledged.
    pub acknowledged: Vec<String>,
    /// Every event id the feed served, in order, repeats included.
    pub served: Vec<String>,
}

/// Creates a webhook for every type and a feed link on it, then reads the
/// feed while 4 publishers send `batches` batches of 100 and 8 publishers send
/// `singles` single events each, until the publishers are done and the reader
/// has caught up (or a minute has passed).
pub async fn race(gql: &Gql, token: &str, batches: usize, singles: usize) -> FeedRace {
    let created = create_webhook(gql, token, fast_webhook("http://127.0.0.1:9/", &["*"], 1)).await;
    let link = gql
        .ok(
            token,
            "mutation($w: ID!) { createFeedLink(webhookId: $w) { url } }",
            json!({ "w": created.webhook.id }),
        )
        .await;
    let url = link["createFeedLink"]["url"]
        .as_str()
        .expect("url")
        .to_owned();

    let mut publishers = JoinSet::new();
    for _ in 0..4 {
        let (gql, token) = (gql.clone(), token.to_owned());
        publishers.spawn(async move { publish_batches(&gql, &token, batches).await });
    }
    for _ in 0..8 {
        let (gql, token) = (gql.clone(), token.to_owned());
        publishers.spawn(async move { publish_singles(&gql, &token, singles).await });
    }

    let mut race = FeedRace {
        acknowledged: Vec::new(),
        served: Vec::new(),
    };
    let mut cursor = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page: Value = gql
            .http
            .get(format!("{url}?limit=1000&after={cursor}"))
            .send()
            .await
            .expect("GET feed")
            .json()
            .await
            .expect("feed JSON");
        let events = page["events"].as_array().expect("events in {page}");
        race.served.extend(
            events
                .iter()
                .map(|e| e["id"].as_str().expect("id").to_owned()),
        );
        if let Some(next) = page["next"].as_str() {
            cursor = next.to_owned();
        }
        while let Some(done) = publishers.try_join_next() {
            race.acknowledged.extend(done.expect("publisher"));
        }
        let caught_up = race.served.len() >= race.acknowledged.len();
        if publishers.is_empty() && (caught_up || Instant::now() > deadline) {
            return race;
        }
    }
}

async fn publish_batches(gql: &Gql, token: &str, batches: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..batches {
        let inputs: Vec<Value> = (0..100)
            .map(|n| json!({ "type": "click.created", "data": { "n": n } }))
            .collect();
        let data = gql
            .ok(
                token,
                "mutation($inputs: [PublishEventInput!]!) { publishEvents(inputs: $inputs) { event { id } } }",
                json!({ "inputs": inputs }),
            )
            .await;
        for published in data["publishEvents"].as_array().expect("results") {
            ids.push(published["event"]["id"].as_str().expect("id").to_owned());
        }
    }
    ids
}

async fn publish_singles(gql: &Gql, token: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let data = gql
            .ok(
                token,
                PUBLISH,
                json!({ "input": { "type": "conversion.created", "data": { "n": n } } }),
            )
            .await;
        ids.push(
            data["publishEvent"]["event"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    ids
}
