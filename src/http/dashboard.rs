//! The live dashboard at `/`: a page, its scripts and its stylesheet, built
//! into the binary (`dashboard/` in the repository) so that it needs no CDN,
//! no build step and nothing on disk at run time. Every response carries a
//! strict Content-Security-Policy: the page may load only its own files and
//! talk only to this server (HTTP and WebSocket).

use axum::{
    http::header,
    response::{IntoResponse, Response},
};

/// Only this server's own files; WebSockets for the live feed; `data:` images
/// for the favicon. No inline script or style.
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'";

const INDEX_HTML: &str = include_str!("../../dashboard/index.html");
const APP_JS: &str = include_str!("../../dashboard/app.js");
const LIVE_JS: &str = include_str!("../../dashboard/live.js");
const CHART_JS: &str = include_str!("../../dashboard/chart.js");
const STYLE_CSS: &str = include_str!("../../dashboard/style.css");

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn live_js() -> Response {
    asset("text/javascript; charset=utf-8", LIVE_JS)
}

pub async fn chart_js() -> Response {
    asset("text/javascript; charset=utf-8", CHART_JS)
}

pub async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
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
