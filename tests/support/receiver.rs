//! Real HTTP receivers on 127.0.0.1 that record what they get and answer as
//! scripted: by status, with headers, slowly, or never.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// A status with extra response headers (e.g. `Retry-After`).
    WithHeaders(u16, Vec<(&'static str, String)>),
    /// Waits this long, then answers 200.
    Slow(Duration),
    /// Never answers (holds the connection until the test ends).
    Hang,
    /// A 200 with a body of this many bytes.
    Body(usize),
    /// A status with exactly these bytes as the body.
    Raw(u16, &'static [u8]),
}

#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub method: Method,
    pub path: String,
    /// The request target as received: path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

type Script = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    log: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// A receiver that answers 200 to everything.
    pub async fn ok() -> Self {
        Self::start(|_| Reply::Status(200)).await
    }

    /// A receiver whose n-th request (0-based) gets `script(n)`.
    pub async fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_on(0, script).await
    }

    /// Like [`Receiver::start`], on a given port of 127.0.0.1 (0 for any).
    pub async fn start_on(
        port: u16,
        script: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Script = Arc::new(script);
        let handler_log = log.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let log = handler_log.clone();
                let script = script.clone();
                async move {
                    let n = {
                        let mut log = log.lock().expect("log");
                        log.push(Received {
                            at: Instant::now(),
                            method,
                            path: uri.path().to_owned(),
                            target: uri
                                .path_and_query()
                                .map_or_else(|| uri.path().to_owned(), |p| p.to_string()),
                            headers,
                            body,
                        });
                        log.len() - 1
                    };
                    answer(script(n)).await
                }
            },
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/hook"),
            log,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().expect("log").clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().expect("log").len()
    }

    /// Waits until at least `n` requests arrived; fails the test after `deadline`.
    pub async fn wait_for(&self, n: usize, deadline: Duration) -> Vec<Received> {
        let what = format!("{n} requests at {}", self.url);
        super::eventually(&what, deadline, || async {
            let got = self.received();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

async fn answer(reply: Reply) -> Response {
    match reply {
        Reply::Status(code) => status(code).into_response(),
        Reply::WithHeaders(code, headers) => {
            let mut response = status(code).into_response();
            for (name, value) in headers {
                response
                    .headers_mut()
                    .insert(name, value.parse().expect("header value"));
            }
            response
        }
        Reply::Slow(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK.into_response()
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Reply::Body(size) => (StatusCode::OK, "x".repeat(size)).into_response(),
        Reply::Raw(code, bytes) => (status(code), bytes).into_response(),
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).expect("valid status")
}
