//! GraphiQL at `GET /graphql`, served from the binary like the dashboard:
//! the page, its start-up script and the pinned third-party builds it runs on
//! (`dashboard/graphiql/vendor/`, refreshed by `dashboard/graphiql/vendor.sh`).
//! Nothing is fetched from a CDN, so it renders offline and behind strict
//! proxies. The page's Content-Security-Policy lets it load only these files
//! and talk only to this server.

use axum::{
    extract::Path,
    http::StatusCode,
    response::{IntoResponse, Response},
};

/// CodeMirror and GraphiQL set inline styles, and the stylesheet carries its
/// fonts as `data:` URLs; scripts come only from this server.
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
                   font-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file under `/graphiql/`, by name.
const FILES: &[(&str, &str, &str)] = &[
    (
        "start.js",
        JS,
        include_str!("../../dashboard/graphiql/start.js"),
    ),
    (
        "start.css",
        CSS,
        include_str!("../../dashboard/graphiql/start.css"),
    ),
    (
        "graphiql.min.js",
        JS,
        include_str!("../../dashboard/graphiql/vendor/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        CSS,
        include_str!("../../dashboard/graphiql/vendor/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        JS,
        include_str!("../../dashboard/graphiql/vendor/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        JS,
        include_str!("../../dashboard/graphiql/vendor/react-dom.production.min.js"),
    ),
    (
        "graphql-ws.min.js",
        JS,
        include_str!("../../dashboard/graphiql/vendor/graphql-ws.min.js"),
    ),
];

pub async fn page() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("../../dashboard/graphiql/index.html"),
    )
}

pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => asset(content_type, body),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    super::dashboard::embedded(content_type, body, CSP)
}
