//! The GraphQL API: schema assembly, with one file per resource under
//! `query/`, `mutation/` and `types/`.

mod budget;
pub mod context;
mod documents;
mod errors;
pub mod exact_numbers;
pub mod multiplex;
mod mutation;
pub mod nesting;
mod nul_text;
mod query;
mod ring;
mod subscription;
mod types;

use std::sync::Arc;

use async_graphql::{SDLExportOptions, Schema, SchemaBuilder};

use crate::state::AppState;

pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Deepest query accepted; the deepest legitimate one is far shallower.
const MAX_DEPTH: usize = 12;
/// Each field costs 1 and a list multiplies its children by its page size.
const MAX_COMPLEXITY: usize = 5_000;

/// The complexity of a page field: `first` (the default page size when not
/// given) times the
/// complexity of one item, at most one over [`MAX_COMPLEXITY`].
/// async-graphql adds the fields' complexities up unchecked:
/// `first: 2147483647` on nested pages overflowed the product, a panic in a
/// debug build and, in a release build, a wrap that could pass the limit.
/// Capped, any one field over the limit still takes the sum over it, and
/// the sum of a document's fields cannot overflow.
pub(crate) fn page_complexity(first: Option<i32>, child_complexity: usize) -> usize {
    let page = crate::domain::pagination::DEFAULT_PAGE_SIZE as i32;
    let first = usize::try_from(first.unwrap_or(page)).unwrap_or(0);
    first
        .saturating_mul(child_complexity)
        .min(MAX_COMPLEXITY + 1)
}

fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .extension(nesting::NestingLimit)
    .extension(nul_text::NulText)
    .extension(exact_numbers::ExactNumbers)
    .extension(errors::ErrorCodes)
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
}

pub fn build(state: Arc<AppState>) -> AppSchema {
    let in_flight = budget::InFlight::new(state.config.max_response_bytes_in_flight);
    builder()
        .extension(budget::ResponseBudget {
            limit: state.config.max_response_bytes,
            in_flight,
        })
        // Last, so innermost: the checks above still run on a cached parse.
        .extension(documents::ParsedDocuments::default())
        .data(state)
        .finish()
}

/// The SDL clients generate code from; committed as `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl_with_options(
        SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}
