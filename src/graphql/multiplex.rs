//! Identical subscriptions share one execution.
//!
//! A thousand dashboards watching `deliveryAttempts` with the same query
//! would otherwise make async-graphql resolve every attempt a thousand times.
//! This executor keys each subscription by what decides its output (query,
//! variables, operation, the caller's tenant and role), runs it once per key,
//! serializes each response once, and fans the JSON out through a bounded
//! broadcast ring, so each subscriber costs a reference count and a write
//! (cloning and serializing the response per subscriber was half the
//! server's CPU with a thousand of them). A subscriber that falls behind its
//! ring loses the oldest items and gets a `LAGGED` error saying how many;
//! the socket ends each subscriber's stream when its own token expires. Queries and
//! mutations sent over the socket run as usual, once per request.

use std::{
    any::TypeId,
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_graphql::{
    Data, Request, Response,
    futures_util::stream::{BoxStream, StreamExt},
    parser::{parse_query, types::OperationType},
};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

use super::{AppSchema, errors::server_error, subscription::lagged};
use crate::{
    auth::{Auth, Principal},
    error::AppError,
};

/// What a shared subscription's output depends on.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    query: String,
    variables: String,
    operation: Option<String>,
    tenant: String,
    role: &'static str,
}

/// A GraphQL response as JSON, serialized once for every subscriber.
pub type Payload = Arc<str>;

type Hubs = HashMap<Key, broadcast::Sender<Payload>>;

#[derive(Clone)]
pub struct Multiplexer {
    schema: AppSchema,
    capacity: usize,
    hubs: Arc<Mutex<Hubs>>,
}

impl Multiplexer {
    /// `capacity`: items a subscriber may fall behind by.
    pub fn new(schema: AppSchema, capacity: usize) -> Self {
        Self {
            schema,
            capacity,
            hubs: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hubs> {
        self.hubs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ring for `key`, starting the shared execution if there is none.
    fn join(&self, key: Key, request: Request, session: Arc<Data>) -> broadcast::Receiver<Payload> {
        let mut hubs = self.lock();
        if let Some(tx) = hubs.get(&key) {
            return tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(self.capacity);
        hubs.insert(key.clone(), tx.clone());
        drop(hubs);
        let upstream = self
            .schema
            .execute_stream_with_session_data(request, session);
        let this = self.clone();
        tokio::spawn(async move {
            let mut upstream = upstream;
            while let Some(response) = upstream.next().await {
                if tx.send(to_json(&response)).is_err() {
                    // Nobody listens any more; stop unless someone just joined.
                    let mut hubs = this.lock();
                    if tx.receiver_count() == 0 {
                        hubs.remove(&key);
                        return;
                    }
                }
            }
            this.lock().remove(&key);
        });
        rx
    }
}

pub fn to_json(response: &Response) -> Payload {
    serde_json::to_string(response)
        .expect("a GraphQL response serializes")
        .into()
}

fn principal_of(session: &Data) -> Option<Principal> {
    match session.get(&TypeId::of::<Auth>())?.downcast_ref::<Auth>()? {
        Auth::Valid(principal) => Some(principal.clone()),
        _ => None,
    }
}

fn is_subscription(request: &Request) -> bool {
    // Too deep to parse safely: the schema refuses it with the reason.
    if super::nesting::check(&request.query).is_err() {
        return false;
    }
    let Ok(document) = parse_query(&request.query) else {
        return false;
    };
    let operation = match &request.operation_name {
        Some(name) => document
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == name))
            .map(|(_, op)| op),
        None => document.operations.iter().next().map(|(_, op)| op),
    };
    operation.is_some_and(|op| op.node.ty == OperationType::Subscription)
}

/// A response carrying only `error`, as a subscription item.
fn error_response(error: async_graphql::Error) -> Payload {
    to_json(&Response::from_errors(vec![server_error(error)]))
}

impl Multiplexer {
    /// Runs `request` for a connection whose `connection_init` gave
    /// `session`: the responses, as JSON, until the operation ends (the
    /// socket ends it sooner when the caller's token expires).
    pub fn execute(&self, request: Request, session: Arc<Data>) -> BoxStream<'static, Payload> {
        // Only subscriptions by an authenticated caller are shared; anything
        // else (queries, mutations, refusals) runs on its own.
        let principal = principal_of(&session);
        let Some(principal) = principal.filter(|_| is_subscription(&request)) else {
            return self
                .schema
                .execute_stream_with_session_data(request, session)
                .map(|response| to_json(&response))
                .boxed();
        };
        let key = Key {
            query: request.query.clone(),
            variables: request.variables.to_string(),
            operation: request.operation_name.clone(),
            tenant: principal.tenant.clone(),
            role: principal.role.as_str(),
        };
        let ring = self.join(key, request, session);
        BroadcastStream::new(ring)
            .map(|item| match item {
                Ok(payload) => payload,
                Err(BroadcastStreamRecvError::Lagged(dropped)) => error_response(lagged(dropped)),
            })
            .boxed()
    }
}

/// The item that ends an operation whose token ran out (the socket ends it
/// and then closes: see `http::ws`).
pub fn token_expired() -> Payload {
    error_response(
        AppError::Unauthenticated("token expired: reconnect with a fresh token".into()).into(),
    )
}
