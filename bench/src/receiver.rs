//! The endpoints the webhooks point at: one axum app on a few 127.0.0.1
//! ports (endpoint N on port N mod ports, so that endpoints are distinct
//! hosts to the server's connection pool, as they usually are).
//!
//! `/e/N` answers 200 at once and records the arrival (when, which event,
//! which endpoint); `/hang/N` reads the request and never answers. Recording
//! is one short lock and a push: no per-request allocation beyond hyper's.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use axum::{
    Router,
    extract::{Request, State},
    http::StatusCode,
    serve::ListenerExt,
};
use tokio::task::JoinHandle;

/// An event id as a number: the ULID of `evt_<ulid>`.
pub type EventKey = u128;

/// `evt_01jf…` → its ULID as a number.
pub fn event_key(id: &str) -> Option<EventKey> {
    let ulid = id.strip_prefix("evt_")?;
    ulid::Ulid::from_string(ulid).ok().map(u128::from)
}

#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub at: Instant,
    pub event: EventKey,
    pub endpoint: u32,
}

#[derive(Default)]
struct Shared {
    arrivals: Mutex<Vec<Arrival>>,
    count: AtomicU64,
    /// Requests to `/hang/N`, held open.
    hung: AtomicU64,
    /// Requests with an unknown path or no readable `webhook-id`.
    rejected: AtomicU64,
    /// TCP connections accepted.
    connections: AtomicU64,
}

pub struct Receiver {
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on `ports` ports (at least one).
    pub async fn start(ports: u32) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::default());
        shared
            .arrivals
            .lock()
            .expect("arrivals lock")
            .reserve(1 << 16);
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (mut addrs, mut tasks) = (Vec::new(), Vec::new());
        for _ in 0..ports.max(1) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            addrs.push(listener.local_addr()?);
            let counted = shared.clone();
            let listener = listener.tap_io(move |_| {
                counted.connections.fetch_add(1, Ordering::Relaxed);
            });
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(err) = axum::serve(listener, app).await {
                    eprintln!("[bench] receiver stopped: {err}");
                }
            }));
        }
        Ok(Self {
            addrs,
            shared,
            tasks,
        })
    }

    fn addr(&self, n: u32) -> SocketAddr {
        self.addrs[n as usize % self.addrs.len()]
    }

    /// The URL of healthy endpoint `n`.
    pub fn url(&self, n: u32) -> String {
        format!("http://{}/e/{n}", self.addr(n))
    }

    /// The URL of an endpoint that accepts the request and never answers
    /// (on the port after endpoint `n`'s, so not in its connection pool).
    pub fn hang_url(&self, n: u32) -> String {
        format!("http://{}/hang/{n}", self.addr(n + 1))
    }

    /// Requests recorded so far at healthy endpoints.
    pub fn count(&self) -> u64 {
        self.shared.count.load(Ordering::Relaxed)
    }

    pub fn hung(&self) -> u64 {
        self.shared.hung.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::Relaxed)
    }

    /// Everything recorded so far; starts a new record.
    pub fn take(&self) -> Vec<Arrival> {
        let mut arrivals = self.shared.arrivals.lock().expect("arrivals lock");
        self.shared.count.store(0, Ordering::Relaxed);
        std::mem::take(&mut *arrivals)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> StatusCode {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    if path.starts_with("/hang/") {
        shared.hung.fetch_add(1, Ordering::Relaxed);
        // Hold the request until the server gives up and closes it.
        return std::future::pending().await;
    }
    let endpoint = path.strip_prefix("/e/").and_then(|n| n.parse::<u32>().ok());
    let event = parts
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .and_then(event_key);
    // Read the body, so the connection can be reused.
    let _ = axum::body::to_bytes(body, 1 << 20).await;
    let (Some(endpoint), Some(event)) = (endpoint, event) else {
        shared.rejected.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    };
    let mut arrivals = shared.arrivals.lock().expect("arrivals lock");
    arrivals.push(Arrival {
        at,
        event,
        endpoint,
    });
    // Under the lock, so `take` never sees a count that disagrees.
    shared.count.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

#[cfg(test)]
mod tests {
    use super::event_key;

    #[test]
    fn event_ids_become_their_ulid() {
        let ulid = ulid::Ulid::new();
        let id = format!("evt_{}", ulid.to_string().to_lowercase());
        assert_eq!(event_key(&id), Some(u128::from(ulid)));
        assert_eq!(event_key(&ulid.to_string()), None);
        assert_eq!(event_key("evt_not-a-ulid"), None);
    }
}
