//! GraphQL output types. Each wraps a domain value; entities never derive
//! GraphQL traits themselves.

pub mod data_filter;
pub mod delivery;
pub mod event;
pub mod event_type;
pub mod feed;
pub mod ids;
pub mod payload;
pub mod recovery;
pub mod viewer;
pub mod webhook;

use async_graphql::{
    OutputType,
    connection::{Connection, Edge},
};
use chrono::{DateTime, Utc};

use crate::{domain::pagination::Page, time::to_datetime};

/// A Relay connection over a page, with the given cursor and node mapping.
pub fn connection<T, N>(
    page: Page<T>,
    cursor: impl Fn(&T) -> String,
    node: impl Fn(T) -> N,
) -> Connection<String, N>
where
    N: OutputType,
{
    let mut connection = Connection::new(page.has_previous, page.has_next);
    connection.edges = page
        .items
        .into_iter()
        .map(|item| Edge::new(cursor(&item), node(item)))
        .collect();
    connection
}

pub fn datetime(ms: i64) -> DateTime<Utc> {
    to_datetime(ms)
}
