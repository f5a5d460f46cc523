//! A budget, in bytes, for the payloads one query or mutation returns.
//!
//! The complexity limit counts fields, not bytes: twelve aliases of
//! `events(first: 100) { data }` over 250 KB events passed it and built a
//! 600 MB response. Here every resolver of a large value (event `data` and
//! `body`, payload schemas, attempt response bodies) charges its size to the
//! request's [`Budget`] before it builds the value. Past the budget the value
//! is not built (that field answers `RESPONSE_TOO_LARGE`), and a query's
//! whole response becomes that one error: partial data would be misleading
//! and as big as the budget. A mutation keeps its partial response, which
//! says what was done.
//!
//! Reads that load payloads take the request's turn one at a time
//! ([`payload_read`]), so aliases do not load many pages at once before the
//! first is charged, and a read that comes after the budget is spent does not
//! load anything.
//!
//! All the queries and mutations running on the instance together hold at
//! most [`InFlight`]'s limit of payload: past it, a query answers
//! `RATE_LIMITED` (retryable, `retryAfterMs`) instead of adding to it, so
//! many concurrent requests (up to 100 per WebSocket) cannot each build a
//! full budget at once.
//!
//! A subscription item is charged the same way: async-graphql runs each
//! item's resolution through the `execute` hook, so each item gets a budget
//! of its own (thousands of aliases of one event's `data` are refused like
//! a query's).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_graphql::{
    Context, Data, Response, ServerError, ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery},
    parser::types::{ExecutableDocument, OperationType},
};
use tokio::sync::{Mutex, MutexGuard};

use super::errors::server_error;
use crate::error::AppError;

/// Payload bytes held by all running queries and mutations of the instance.
pub struct InFlight {
    held: AtomicUsize,
    limit: usize,
}

impl InFlight {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicUsize::new(0),
            limit,
        })
    }
}

const WITHIN: u8 = 0;
const TOO_LARGE: u8 = 1;
const BUSY: u8 = 2;
/// When a request refused for the instance's sake may try again.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// What one query or mutation may still return.
pub struct Budget {
    limit: usize,
    spent: AtomicUsize,
    /// `WITHIN`, or why the request was refused.
    refused: AtomicU8,
    in_flight: Arc<InFlight>,
    /// Held while a payload-bearing read loads.
    turn: Mutex<()>,
}

impl Budget {
    fn new(limit: usize, in_flight: Arc<InFlight>) -> Self {
        Self {
            limit,
            spent: AtomicUsize::new(0),
            refused: AtomicU8::new(WITHIN),
            in_flight,
            turn: Mutex::new(()),
        }
    }

    fn charge(&self, bytes: usize) -> Result<(), AppError> {
        if self.refused.load(Ordering::Relaxed) != WITHIN {
            return Err(self.refusal());
        }
        if self.spent.load(Ordering::Relaxed) + bytes > self.limit {
            self.refuse(TOO_LARGE);
            return Err(self.refusal());
        }
        let held = self.in_flight.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if held > self.in_flight.limit {
            self.in_flight.held.fetch_sub(bytes, Ordering::Relaxed);
            self.refuse(BUSY);
            return Err(self.refusal());
        }
        self.spent.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    fn refuse(&self, why: u8) {
        let _ = self
            .refused
            .compare_exchange(WITHIN, why, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn is_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed) != WITHIN
    }

    fn refusal(&self) -> AppError {
        match self.refused.load(Ordering::Relaxed) {
            BUSY => AppError::RateLimited {
                retry_after: BUSY_RETRY,
            },
            _ => AppError::ResponseTooLarge { limit: self.limit },
        }
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        self.in_flight
            .held
            .fetch_sub(*self.spent.get_mut(), Ordering::Relaxed);
    }
}

/// Charges `bytes` of payload to the request (a query, a mutation, or one
/// subscription item); `RESPONSE_TOO_LARGE` once it is over budget. Free
/// where no budget was given (a schema built without the extension).
pub fn charge(ctx: &Context<'_>, bytes: usize) -> Result<(), AppError> {
    match ctx.data_opt::<Arc<Budget>>() {
        Some(budget) => budget.charge(bytes),
        None => Ok(()),
    }
}

/// The request's turn to load payloads, when `wanted` (the selection asks
/// for them); refused once the budget is spent.
pub async fn payload_read<'a>(
    ctx: &'a Context<'_>,
    wanted: bool,
) -> Result<Option<MutexGuard<'a, ()>>, AppError> {
    let Some(budget) = ctx.data_opt::<Arc<Budget>>().filter(|_| wanted) else {
        return Ok(None);
    };
    let turn = budget.turn.lock().await;
    budget.charge(0)?;
    Ok(Some(turn))
}

/// Gives each query and mutation a budget of `limit` bytes, out of the
/// instance's `in_flight`.
pub struct ResponseBudget {
    pub limit: usize,
    pub in_flight: Arc<InFlight>,
}

impl ExtensionFactory for ResponseBudget {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ResponseBudgetExtension {
            limit: self.limit,
            in_flight: self.in_flight.clone(),
            has_mutation: AtomicBool::new(false),
        })
    }
}

struct ResponseBudgetExtension {
    limit: usize,
    in_flight: Arc<InFlight>,
    /// Whether the document holds a mutation.
    has_mutation: AtomicBool,
}

#[async_trait::async_trait]
impl Extension for ResponseBudgetExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let has_mutation = document
            .operations
            .iter()
            .any(|(_, op)| op.node.ty == OperationType::Mutation);
        self.has_mutation.store(has_mutation, Ordering::Relaxed);
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let budget = Arc::new(Budget::new(self.limit, self.in_flight.clone()));
        let mut data = Data::default();
        data.insert(budget.clone());
        let response = next.run_with_data(ctx, operation_name, data).await;
        if !budget.is_refused() || self.has_mutation.load(Ordering::Relaxed) {
            return response;
        }
        // Drop what was built before answering.
        drop(response);
        let error: ServerError = server_error(budget.refusal().into());
        Response::from_errors(vec![error])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_past_the_instances_payload_in_flight_are_rate_limited_until_others_end() {
        let in_flight = InFlight::new(1_000);
        let first = Budget::new(800, in_flight.clone());
        let second = Budget::new(800, in_flight.clone());
        first.charge(600).expect("within both budgets");
        let refused = second
            .charge(600)
            .expect_err("the instance holds 600 of 1 000");
        assert_eq!(refused.code(), "RATE_LIMITED");
        assert!(second.is_refused(), "the whole request is refused");
        drop(first);
        assert_eq!(in_flight.held.load(Ordering::Relaxed), 0);
        let third = Budget::new(800, in_flight.clone());
        third.charge(600).expect("given back when the first ended");
        let too_large = third.charge(300).expect_err("past its own budget");
        assert_eq!(too_large.code(), "RESPONSE_TOO_LARGE");
        assert_eq!(in_flight.held.load(Ordering::Relaxed), 600);
    }
}
