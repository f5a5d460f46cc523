//! Gives every GraphQL error an `extensions.code`.
//!
//! Resolvers return [`AppError`]s with `?`; async-graphql keeps the original
//! error as the `source`, and this extension reads it back when the response
//! is assembled. Internal errors are logged here, once, and reach the client
//! only as "internal error". Errors async-graphql raises itself (parse,
//! validation, input coercion, limits) are the client's: `BAD_USER_INPUT`.

use std::sync::Arc;

use async_graphql::{
    Response, ServerError,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe},
    futures_util::stream::{BoxStream, StreamExt},
};

use crate::error::AppError;

pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension)
    }
}

struct ErrorCodesExtension;

#[async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        response.errors.iter_mut().for_each(classify);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream)
            .map(|mut response| {
                response.errors.iter_mut().for_each(classify);
                response
            })
            .boxed()
    }
}

/// An error raised outside a resolver (by the subscription executor), coded
/// like the others.
pub(crate) fn server_error(error: async_graphql::Error) -> ServerError {
    let mut server_error = error.into_server_error(Default::default());
    server_error.locations.clear();
    classify(&mut server_error);
    server_error
}

fn classify(error: &mut ServerError) {
    let app_error = error
        .source
        .as_ref()
        .and_then(|source| source.downcast_ref::<AppError>());
    let extensions = error.extensions.get_or_insert_with(Default::default);
    match app_error {
        Some(app_error) => {
            extensions.set("code", app_error.code());
            match app_error {
                AppError::BadInput { field, .. } => extensions.set("field", field.as_str()),
                AppError::RateLimited { retry_after } => {
                    extensions.set("retryAfterMs", retry_after.as_millis() as u64);
                    extensions.set("retryable", true);
                }
                AppError::Unavailable(cause) => {
                    extensions.set("retryable", true);
                    tracing::warn!(path = ?error.path, "database unavailable: {cause}");
                }
                AppError::Internal(cause) => {
                    tracing::error!(path = ?error.path, "request failed: {cause:#}");
                }
                _ => {}
            }
        }
        None if extensions.get("code").is_none() => extensions.set("code", "BAD_USER_INPUT"),
        None => {}
    }
}
