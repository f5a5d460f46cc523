//! The dashboard at `/`: served from the binary with the right content types,
//! no caching surprises, a strict Content-Security-Policy, and nothing loaded
//! from other hosts.

use std::time::Duration;

use tokio::sync::oneshot;

const JWT_SECRET: &str = "dashboard-test-secret-dashboard-test!";
/// base64 of 32 bytes of 0x2a.
const ENCRYPTION_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";
const CSP: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'";

/// A server on port 0 with a fresh SQLite database; stops when dropped.
struct Server {
    base: String,
    _shutdown: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = format!("sqlite://{}/hookline.db", dir.path().display());
    let config = hookline::Config::from_args([
        "--database-url",
        &database_url,
        "--jwt-secret",
        JWT_SECRET,
        "--encryption-key",
        ENCRYPTION_KEY,
        "--listen",
        "127.0.0.1:0",
    ])
    .expect("test config parses");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(hookline::run(config, listener, async move {
        let _ = rx.await;
    }));
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    for _ in 0..500 {
        assert!(!handle.is_finished(), "server exited during start-up");
        if let Ok(resp) = client.get(format!("{base}/readyz")).send().await
            && resp.status().is_success()
        {
            return Server {
                base,
                _shutdown: tx,
                _dir: dir,
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server at {base} never became ready");
}

struct Asset {
    content_type: String,
    csp: String,
    cache_control: String,
    body: String,
}

async fn get(server: &Server, path: &str) -> Asset {
    let resp = reqwest::get(format!("{}{path}", server.base))
        .await
        .expect("GET");
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
    let server = start().await;
    let files = [
        ("/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/live.js", "text/javascript"),
        ("/dashboard/chart.js", "text/javascript"),
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
}

#[tokio::test]
async fn the_page_loads_only_its_own_assets() {
    let server = start().await;
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
    let resp = reqwest::get(format!("{}/graphql", server.base))
        .await
        .expect("GET /graphql");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn unknown_dashboard_files_are_not_found() {
    let server = start().await;
    let resp = reqwest::get(format!("{}/dashboard/missing.js", server.base))
        .await
        .expect("GET");
    assert_eq!(resp.status(), 404);
}
