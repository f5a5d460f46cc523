//! Live streams over WebSocket. Each subscriber reads from a bounded ring
//! shared with the others: one that falls behind gets a `LAGGED` error
//! telling how many items it missed (re-read them with the queries), never
//! an unbounded buffer. Streams end when the token expires.

mod deliveries;
mod events;

use std::{pin::Pin, sync::Arc};

use async_graphql::{ErrorExtensions, MergedSubscription};
use futures::{Stream, StreamExt, stream};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

use crate::{auth::Principal, error::AppError, time::to_datetime};

#[derive(MergedSubscription, Default)]
pub struct Subscription(deliveries::DeliverySubscription, events::EventSubscription);

pub type Live<T> = Pin<Box<dyn Stream<Item = async_graphql::Result<T>> + Send>>;

/// The caller's tenant's items from `ring` that pass `keep`, as GraphQL items,
/// with lag reported and an end at token expiry.
pub fn live<T, N>(
    principal: &Principal,
    ring: broadcast::Receiver<Arc<T>>,
    keep: impl Fn(&T) -> Option<N> + Send + 'static,
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
    let expires = to_datetime(principal.expires_at.saturating_mul(1000));
    let remaining = (expires - chrono::Utc::now()).to_std().unwrap_or_default();
    let expiry = tokio::time::sleep(remaining);
    let expired = stream::once(async {
        Err(async_graphql::Error::from(AppError::Unauthenticated(
            "token expired: subscribe again with a fresh token".into(),
        )))
    });
    Box::pin(items.take_until(expiry).chain(expired))
}

fn lagged(dropped: u64) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "this subscriber fell behind and missed {dropped} items; re-read them with the queries"
    ))
    .extend_with(|_, extensions| {
        extensions.set("code", "LAGGED");
        extensions.set("dropped", dropped);
    })
}
