//! Live streams over WebSocket. Each subscriber reads from a bounded ring
//! shared with the others: one that falls behind gets a `LAGGED` error
//! telling how many items it missed (re-read them with the queries), never
//! an unbounded buffer.

mod deliveries;
mod events;

use std::{pin::Pin, sync::Arc};

use async_graphql::{ErrorExtensions, MergedSubscription};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

#[derive(MergedSubscription, Default)]
pub struct Subscription(deliveries::DeliverySubscription, events::EventSubscription);

pub type Live<T> = Pin<Box<dyn Stream<Item = async_graphql::Result<T>> + Send>>;

/// The caller's tenant's items from `ring` that pass `keep`, as GraphQL
/// items, with lag reported. (Token expiry and sharing between identical
/// subscriptions are the WebSocket executor's: see `multiplex`.)
pub fn live<T, N>(
    ring: broadcast::Receiver<Arc<T>>,
    keep: impl Fn(&Arc<T>) -> Option<N> + Send + 'static,
) -> Live<N>
where
    T: Send + Sync + 'static,
    N: Send + 'static,
{
    let items = BroadcastStream::new(ring).filter_map(move |item| {
        let out = match item {
            Ok(item) => keep(&item).map(Ok),
            Err(BroadcastStreamRecvError::Lagged(dropped)) => Some(Err(lagged(dropped))),
        };
        std::future::ready(out)
    });
    Box::pin(items)
}

/// Told to a subscriber that fell behind its ring by `dropped` items.
pub(crate) fn lagged(dropped: u64) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "this subscriber fell behind and missed {dropped} items; re-read them with the queries"
    ))
    .extend_with(|_, extensions| {
        extensions.set("code", "LAGGED");
        extensions.set("dropped", dropped);
    })
}
