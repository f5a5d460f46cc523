//! The HTTP surface: `/graphql` (POST for operations, GET for GraphiQL),
//! `/graphql/ws` (subscriptions), `/healthz` and `/readyz`.

mod dashboard;
mod feeds;
mod graphiql;
mod ws;

use std::sync::Arc;

use async_graphql_axum::GraphQLResponse;
use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    trace::TraceLayer,
};

use crate::{
    config::Config,
    domain::health,
    graphql::{
        AppSchema,
        multiplex::{Limits, Multiplexer},
    },
    state::AppState,
};

#[derive(Clone)]
pub(crate) struct Http {
    state: Arc<AppState>,
    schema: AppSchema,
    /// Runs subscriptions, shared between identical subscribers.
    subscriptions: Multiplexer,
}

pub fn router(state: Arc<AppState>, schema: AppSchema) -> Router {
    let body_limit = state.config.max_request_bytes;
    let cors = cors(&state.config.access.cors_origins);
    let router = Router::new()
        .route("/", get(dashboard::index))
        .route("/dashboard/{name}", get(dashboard::file))
        .route("/graphql", get(graphiql::page).post(graphql))
        .route("/graphiql/{file}", get(graphiql::file))
        .route("/graphql/ws", get(ws::upgrade))
        .route("/feeds/{token}", get(feeds::read))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(body_limit));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(TraceLayer::new_for_http()).with_state(Http {
        subscriptions: Multiplexer::new(
            schema.clone(),
            subscription_limits(&state.config),
            state.shutdown.clone(),
        ),
        state,
        schema,
    })
}

/// CORS for the listed origins: they may call `/graphql` with a token
/// (`Authorization`, JSON bodies, `traceparent`). Without a list, browsers
/// allow only this server's own pages, as they do by default.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static(crate::telemetry::TRACEPARENT),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

fn subscription_limits(config: &Config) -> Limits {
    Limits {
        buffer_items: config.subscriber_buffer as usize,
        buffer_bytes: config.subscriber_buffer_bytes,
        per_tenant: config.max_subscriptions_per_tenant as usize,
        per_instance: config.max_subscriptions as usize,
    }
}

/// Queries and mutations. Only `application/json` bodies are accepted, so a
/// browser form cannot post a mutation across sites.
async fn graphql(State(http): State<Http>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "requests must be `Content-Type: application/json`",
        );
    }
    // One operation per request, as a JSON object (no batches, no `null`).
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return request_error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object: {\"query\": \"...\", \"variables\": {...}}",
        );
    }
    if let Err(error) = crate::graphql::exact_numbers::check_json(&body) {
        return request_error(StatusCode::BAD_REQUEST, &error.to_string());
    }
    let request: async_graphql::Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a GraphQL request in JSON: {err}"),
            );
        }
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let auth = http.state.jwt.authenticate(authorization).await;
    let mut request = request.data(auth);
    if let Some(trace) = headers
        .get(crate::telemetry::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::telemetry::valid_traceparent)
    {
        request = request.data(crate::telemetry::InboundTrace(trace));
    }
    GraphQLResponse::from(http.schema.execute(request).await).into_response()
}

/// A response for a request that never reached GraphQL execution, shaped like
/// a GraphQL error so clients handle it the same way.
fn request_error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "errors": [{ "message": message, "extensions": { "code": "BAD_USER_INPUT" } }]
    });
    (status, Json(body)).into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

/// Prometheus text format. No tenant data: counts, durations, queue depth.
async fn metrics(State(http): State<Http>) -> Response {
    if let Some((lag, by_replica, by_primary)) = http.state.log.figures() {
        http.state.metrics.log_reads(lag, by_replica, by_primary);
    }
    let body = http
        .state
        .metrics
        .render(&http.state.read, http.state.live.receiver_count())
        .await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn readyz(State(http): State<Http>) -> Response {
    if health::database_answers(&http.state.db).await {
        (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response()
    } else {
        let body = Json(json!({ "status": "unavailable", "reason": "database unreachable" }));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}
