//! `GET /feeds/{token}?after=<cursor>&limit=<n>`: a webhook's events for
//! consumers that poll instead of receiving POSTs.

use axum::{
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::Http;
use crate::error::AppError;

#[derive(Deserialize)]
pub struct FeedQuery {
    after: Option<String>,
    limit: Option<u64>,
}

pub async fn read(
    State(http): State<Http>,
    Path(token): Path<String>,
    Query(query): Query<FeedQuery>,
) -> Response {
    let page = http
        .state
        .feeds
        .read(
            &token,
            query.after.as_deref().filter(|a| !a.is_empty()),
            query.limit,
        )
        .await;
    let (status, body) = match page {
        Ok(page) => {
            let body = json!({
                "webhookId": page.webhook_id,
                "events": page.events,
                "next": page.next,
                "hasMore": page.has_more,
            });
            // Turned into bytes while the page still holds its turn (its
            // last field is dropped with it, here).
            (
                StatusCode::OK,
                serde_json::to_vec(&body).unwrap_or_default(),
            )
        }
        Err(err) => {
            let status = match &err {
                AppError::NotFound(_) => StatusCode::NOT_FOUND,
                AppError::BadInput { .. } => StatusCode::BAD_REQUEST,
                AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            if let AppError::Internal(cause) = &err {
                tracing::error!("reading a feed failed: {cause:#}");
            }
            let body = json!({ "error": { "code": err.code(), "message": err.to_string() } });
            (status, serde_json::to_vec(&body).unwrap_or_default())
        }
    };
    let headers = [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    let mut response = (status, headers, body).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}
