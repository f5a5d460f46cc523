//! The one test harness, shared by every test crate (`tests/api`,
//! `tests/faults`, `tests/dashboard.rs`) through `#[path]`:
//!
//! - [`app::TestApp`]: hookline in the test's process on port 0, on a fresh
//!   database (SQLite by default, a new PostgreSQL schema when
//!   `HOOKLINE_TEST_DATABASE_URL` is set);
//! - [`process::ServerProcess`]: the real binary as a child process, for
//!   tests that kill, signal or starve it; it learns its address from the
//!   `{"listening":"ADDR"}` line `serve` prints;
//! - [`jwt`]: the keys both are started with, tokens, forged tokens;
//! - [`gql::Gql`] (raw JSON) and [`fixtures`] (typed operations returning
//!   [`types`]: `publish`, `create_webhook`, `delivery`, `delivery_stats`, …);
//! - [`receiver::Receiver`]: real HTTP receivers that record and answer as
//!   scripted; [`ws::WsClient`]: a GraphQL WebSocket client;
//! - [`forwarder::Forwarder`]: a TCP link to the database that a test can
//!   cut and restore;
//! - [`eventually`]: wait for a condition, never for a fixed time.
//!
//! A new test usually starts with `TestApp::spawn()`, `app.admin("acme")`, a
//! `Receiver`, then `create_webhook`, `publish` and a wait.

// Each test crate uses a different part of the harness.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod disk_full;
pub mod feed_race;
pub mod fixtures;
pub mod forwarder;
pub mod gql;
pub mod jwt;
pub mod process;
pub mod receiver;
pub mod types;
pub mod verify;
pub mod ws;

pub use app::TestApp;
pub use gql::{GqlExt, error_code};

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
