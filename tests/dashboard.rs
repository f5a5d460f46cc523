//! The dashboard at `/`: served from the binary with the right content types,
//! no caching surprises, a strict Content-Security-Policy, and nothing loaded
//! from other hosts.

#[path = "support/mod.rs"]
mod support;

use support::TestApp;

const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'";

struct Asset {
    content_type: String,
    csp: String,
    cache_control: String,
    body: String,
}

async fn get(server: &TestApp, path: &str) -> Asset {
    let resp = reqwest::get(server.url(path)).await.expect("GET");
    assert_eq!(resp.status(), 200, "GET {path}");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    Asset {
        content_type: header("content-type"),
        csp: header("content-security-policy"),
        cache_control: header("cache-control"),
        body: resp.text().await.expect("body"),
    }
}

/// Every `http://` or `https://` in `text`, with what follows it.
fn absolute_urls(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    ["http://", "https://"]
        .iter()
        .flat_map(|scheme| lower.match_indices(scheme).map(|(i, _)| i))
        .map(|i| lower[i..].chars().take(60).collect())
        .collect()
}

#[tokio::test]
async fn dashboard_is_served_from_the_binary_under_a_strict_csp() {
    let server = TestApp::spawn().await;
    let files = [
        ("/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/live.js", "text/javascript"),
        ("/dashboard/chart.js", "text/javascript"),
        ("/dashboard/dom.js", "text/javascript"),
        ("/dashboard/recovery.js", "text/javascript"),
        ("/dashboard/ops.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ];
    for (path, mime) in files {
        let asset = get(&server, path).await;
        assert!(
            asset.content_type.starts_with(mime),
            "{path}: content type {:?}",
            asset.content_type
        );
        assert_eq!(asset.csp, CSP, "{path}: Content-Security-Policy");
        assert_eq!(asset.cache_control, "no-cache", "{path}: Cache-Control");
        assert!(!asset.body.is_empty(), "{path}: empty body");
        assert_eq!(
            absolute_urls(&asset.body),
            Vec::<String>::new(),
            "{path} refers to other hosts"
        );
    }
    // Nothing else is served from there.
    let client = reqwest::Client::new();
    for path in ["/dashboard/nope.js", "/dashboard/..%2Fsrc%2Flib.rs"] {
        let status = client
            .get(format!("http://{}{path}", server.addr))
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn the_page_loads_only_its_own_assets() {
    let server = TestApp::spawn().await;
    let html = get(&server, "/").await.body;
    for asset in ["/dashboard/app.js", "/dashboard/style.css"] {
        assert!(html.contains(asset), "index.html does not load {asset}");
    }
    // No inline script or style: the CSP would block them.
    assert!(!html.contains("<script>"), "inline <script> in index.html");
    assert!(!html.contains("<style"), "inline <style> in index.html");
    assert!(!html.contains(" style="), "style attribute in index.html");
    // Every `src`/`href` is a path on this server (or the data: favicon).
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let value: String = html[i + attr.len()..]
                .chars()
                .take_while(|c| *c != '"')
                .collect();
            assert!(
                (value.starts_with('/') && !value.starts_with("//")) || value.starts_with("data:"),
                "{attr}{value}\" leaves the server"
            );
        }
    }
    // The API the page talks to is still where it was.
    let resp = reqwest::get(server.url("/graphql"))
        .await
        .expect("GET /graphql");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn unknown_dashboard_files_are_not_found() {
    let server = TestApp::spawn().await;
    let resp = reqwest::get(server.url("/dashboard/missing.js"))
        .await
        .expect("GET");
    assert_eq!(resp.status(), 404);
}
