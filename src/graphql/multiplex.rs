//! Identical subscriptions share one execution.
//!
//! A thousand dashboards watching `deliveryAttempts` with the same query
//! would otherwise make async-graphql resolve every attempt a thousand times.
//! This executor keys each subscription by what decides its output (query,
//! variables, operation, the caller's tenant and role, and a partner's
//! login, since what a partner may see is its own), runs it once per key,
//! serializes each response once, and fans the JSON out through a bounded
//! [`ring`], so each subscriber costs a reference count and a write
//! (cloning and serializing the response per subscriber was half the
//! server's CPU with a thousand of them). A subscriber that falls behind its
//! ring loses the oldest items and gets a `LAGGED` error saying how many;
//! the socket ends each subscriber's stream when its own token expires. Queries and
//! mutations sent over the socket run as usual, once per request.
//!
//! Live subscriptions are counted, per tenant and for the instance, and
//! refused past the caps with `TOO_MANY_SUBSCRIPTIONS`: each one costs an
//! execution, and a distinct one its own ring.

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

use super::{
    AppSchema,
    errors::server_error,
    ring::{self, Ledger, Received},
    subscription::lagged,
};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{Auth, Principal},
    error::AppError,
};

pub use super::ring::Payload;

/// What a shared subscription's output depends on.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    query: String,
    variables: String,
    operation: Option<String>,
    tenant: String,
    role: &'static str,
    /// A partner's login: partners never share an execution with each
    /// other, so each one's subscription is checked against its own reach.
    partner: Option<String>,
}

type Hubs = HashMap<Key, Arc<ring::Sender>>;

/// How much live subscriptions may hold and how many may run.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Items a subscriber may fall behind by.
    pub buffer_items: usize,
    /// Bytes all rings together may hold before the ones that send shed
    /// their oldest unread items.
    pub buffer_bytes: usize,
    /// Live subscriptions of one tenant on this instance.
    pub per_tenant: usize,
    /// Live subscriptions on this instance.
    pub per_instance: usize,
}

/// Live subscriptions on this instance, in all and by tenant.
#[derive(Default)]
struct Census {
    total: usize,
    by_tenant: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct Multiplexer {
    schema: AppSchema,
    limits: Limits,
    /// Ends every shared execution (the server is stopping).
    stop: CancellationToken,
    ledger: Arc<Ledger>,
    hubs: Arc<Mutex<Hubs>>,
    census: Arc<Mutex<Census>>,
}

impl Multiplexer {
    /// Shared executions run until their last subscriber leaves or `stop`
    /// is cancelled.
    pub fn new(schema: AppSchema, limits: Limits, stop: CancellationToken) -> Self {
        Self {
            schema,
            limits,
            stop,
            ledger: Ledger::new(limits.buffer_bytes),
            hubs: Arc::default(),
            census: Arc::default(),
        }
    }

    /// Bytes the rings hold now.
    pub fn buffered_bytes(&self) -> usize {
        self.ledger.held()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hubs> {
        self.hubs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ring for `key`, starting the shared execution if there is none.
    fn join(&self, key: Key, request: Request, session: Arc<Data>) -> ring::Receiver {
        let mut hubs = self.lock();
        if let Some(tx) = hubs.get(&key) {
            return tx.subscribe();
        }
        let (tx, rx) = ring::channel(self.limits.buffer_items, self.ledger.clone());
        let tx = Arc::new(tx);
        hubs.insert(key.clone(), tx.clone());
        drop(hubs);
        let upstream = self
            .schema
            .execute_stream_with_session_data(request, session);
        let this = self.clone();
        tokio::spawn(async move {
            let mut upstream = upstream;
            loop {
                let response = tokio::select! {
                    response = upstream.next() => response,
                    () = this.stop.cancelled() => None,
                };
                let Some(response) = response else { break };
                if !tx.send(to_json(&response)) {
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
    /// Refused with `TOO_MANY_SUBSCRIPTIONS` past the caps.
    pub fn execute(
        &self,
        request: Request,
        session: Arc<Data>,
    ) -> Result<BoxStream<'static, Payload>, AppError> {
        // Only subscriptions by an authenticated caller are shared; anything
        // else (queries, mutations, refusals) runs on its own.
        let principal = principal_of(&session);
        let Some(principal) = principal.filter(|_| is_subscription(&request)) else {
            return Ok(self
                .schema
                .execute_stream_with_session_data(request, session)
                .map(|response| to_json(&response))
                .boxed());
        };
        let counted = self.admit(&principal.tenant)?;
        let key = Key {
            query: request.query.clone(),
            variables: request.variables.to_string(),
            operation: request.operation_name.clone(),
            tenant: principal.tenant.clone(),
            role: principal.role.as_str(),
            partner: (principal.role == crate::auth::Role::Partner)
                .then(|| principal.login.clone()),
        };
        let ring = self.join(key, request, session);
        Ok(ring
            .into_stream()
            .map(move |item| {
                // Held for as long as the subscriber's stream lives.
                let _counted = &counted;
                match item {
                    Received::Item(payload) => payload,
                    Received::Lagged(dropped) => error_response(lagged(dropped)),
                }
            })
            .boxed())
    }

    /// Counts one more live subscription for `tenant`, unless a cap is
    /// reached.
    fn admit(&self, tenant: &str) -> Result<Counted, AppError> {
        let mut census = self.census.lock().unwrap_or_else(|p| p.into_inner());
        if census.total >= self.limits.per_instance {
            return Err(AppError::TooManySubscriptions(format!(
                "this server runs at most {} live subscriptions; retry later or on another instance",
                self.limits.per_instance
            )));
        }
        let of_tenant = census.by_tenant.entry(tenant.to_owned()).or_default();
        if *of_tenant >= self.limits.per_tenant {
            return Err(AppError::TooManySubscriptions(format!(
                "a tenant may have at most {} live subscriptions on one server; end some first",
                self.limits.per_tenant
            )));
        }
        *of_tenant += 1;
        census.total += 1;
        Ok(Counted {
            census: self.census.clone(),
            tenant: tenant.to_owned(),
        })
    }
}

/// One live subscription in the census, until dropped.
struct Counted {
    census: Arc<Mutex<Census>>,
    tenant: String,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut census = self.census.lock().unwrap_or_else(|p| p.into_inner());
        census.total -= 1;
        if let Some(count) = census.by_tenant.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                census.by_tenant.remove(&self.tenant);
            }
        }
    }
}

/// The item that ends an operation whose token is refused now (the socket
/// ends it and then closes: see `http::ws`).
pub fn token_refused(reason: String) -> Payload {
    error_response(AppError::Unauthenticated(reason).into())
}

/// The item that ends an operation whose token ran out (the socket ends it
/// and then closes: see `http::ws`).
pub fn token_expired() -> Payload {
    error_response(
        AppError::Unauthenticated("token expired: reconnect with a fresh token".into()).into(),
    )
}
