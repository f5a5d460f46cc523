//! hookline: webhook delivery for affiliate and partner-marketing platforms.
//!
//! A request enters through [`http`] (axum) and [`graphql`] (async-graphql),
//! the rules live in [`domain`], and everything is stored through the SeaORM
//! entities of the `entity` crate. [`run`] is what `hookline serve` calls and
//! what the integration tests start on port 0.

pub mod auth;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod ids;
pub mod keys;
pub mod state;
pub mod time;

use std::{future::Future, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;

pub use config::Config;

use crate::{keys::Keys, state::AppState};

/// Runs the service on `listener` until `shutdown` completes: migrates the
/// database, then serves the API.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let keys = Keys::resolve(&config.store)?;
    db::migrate(&config.store.database_url).await?;
    let db = db::connect(&config.store.database_url).await?;
    let state = Arc::new(AppState::new(db, config, &keys));
    let schema = graphql::build(state.clone());
    let app = http::router(state.clone(), schema);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    state.db.clone().close().await.ok();
    Ok(())
}
