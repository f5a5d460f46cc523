//! The live dashboard at `/`: a page, its scripts and its stylesheet, built
//! into the binary (`dashboard/` in the repository) so that it needs no CDN,
//! no build step and nothing on disk at run time. Every response carries a
//! strict Content-Security-Policy: the page may load only its own files and
//! talk only to this server (HTTP and WebSocket).

use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use super::Http;

/// Only this server's own files; WebSockets for the live feed; `data:` images
/// for the favicon. No inline script or style.
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'";

const INDEX_HTML: &str = include_str!("../../dashboard/index.html");

const JS: &str = "text/javascript; charset=utf-8";

/// The page's other files, by name under `/dashboard/`.
const FILES: [(&str, &str, &str); 7] = [
    ("app.js", JS, include_str!("../../dashboard/app.js")),
    ("dom.js", JS, include_str!("../../dashboard/dom.js")),
    ("live.js", JS, include_str!("../../dashboard/live.js")),
    ("chart.js", JS, include_str!("../../dashboard/chart.js")),
    (
        "recovery.js",
        JS,
        include_str!("../../dashboard/recovery.js"),
    ),
    ("ops.js", JS, include_str!("../../dashboard/ops.js")),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../dashboard/style.css"),
    ),
];

/// The page. It may be framed only by the pages the operator lists
/// (`HOOKLINE_PORTAL_FRAME_ANCESTORS`), for the partner portal embedded in
/// the network's own site; by nobody else.
pub async fn index(State(http): State<Http>) -> Response {
    let ancestors = http.state.config.access.frame_ancestors();
    if ancestors.is_empty() {
        return asset("text/html; charset=utf-8", INDEX_HTML);
    }
    let csp = format!("{CSP}; frame-ancestors 'self' {}", ancestors.join(" "));
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
        INDEX_HTML,
    )
        .into_response()
}

/// `/dashboard/{name}`: one of [`FILES`], or 404.
pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => asset(content_type, body),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    embedded(content_type, body, CSP)
}

/// An embedded file with its content type, revalidated on every load (the
/// files change with the binary), under the page's `csp`. GraphiQL's files
/// are served the same way.
pub(super) fn embedded(
    content_type: &'static str,
    body: &'static str,
    csp: &'static str,
) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}
