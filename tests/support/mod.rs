//! The test harness: a real hookline server on port 0 (SQLite by default,
//! PostgreSQL when `HOOKLINE_TEST_DATABASE_URL` is set), a GraphQL client,
//! token minting, and polling with a deadline.

#![allow(dead_code)]

pub mod app;
pub mod disk_full;
pub mod feed_race;
pub mod fixtures;
pub mod gql;
pub mod process;
pub mod receiver;
pub mod verify;
pub mod ws;

pub use app::TestApp;
pub use gql::GqlExt;

use std::{future::Future, time::Duration};

/// Polls `check` until it returns `Some`, failing the test after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
