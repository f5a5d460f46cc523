//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`): many
//! subscribers to `deliveryAttempts`, each timing every item it receives.

use std::{
    borrow::Cow,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, value::RawValue};
use tokio::{net::TcpStream, sync::watch, task::JoinHandle};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::stats::Latencies;

pub const QUERY: &str = "subscription { deliveryAttempts { id deliveryId eventId attemptNumber \
                         outcome startedAt durationMs } }";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a subscription could not be opened.
pub enum Refused {
    /// The server does not offer the subscription (yet).
    Unsupported(String),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Refused {
    fn from(err: anyhow::Error) -> Self {
        Self::Failed(err)
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Next<'a> {
    #[serde(borrow)]
    data: Option<Data<'a>>,
    #[serde(default)]
    errors: Vec<GqlError>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "deliveryAttempts", borrow)]
    attempt: Option<Attempt<'a>>,
}

#[derive(Deserialize)]
struct Attempt<'a> {
    #[serde(rename = "startedAt", borrow)]
    started_at: Cow<'a, str>,
    #[serde(rename = "durationMs")]
    duration_ms: i64,
}

#[derive(Deserialize)]
struct GqlError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    extensions: Option<serde_json::Value>,
}

/// Connects, authenticates and subscribes.
async fn open(addr: SocketAddr, token: &str) -> Result<Ws, Refused> {
    let mut request = format!("ws://{addr}/graphql/ws")
        .into_client_request()
        .context("WebSocket request")?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut ws, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(connected) => connected,
        Err(tungstenite::Error::Http(response)) => {
            return Err(Refused::Unsupported(format!(
                "no WebSocket endpoint at /graphql/ws (HTTP {})",
                response.status()
            )));
        }
        Err(err) => return Err(Refused::Failed(err.into())),
    };
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    send(&mut ws, init.to_string()).await?;
    let acked = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(message) = ws.next().await {
            match message.context("reading connection_ack")? {
                Message::Text(text) => {
                    let envelope: Envelope = serde_json::from_str(text.as_str())?;
                    match &*envelope.kind {
                        "connection_ack" => return Ok(()),
                        "ping" => send(&mut ws, r#"{"type":"pong"}"#.into()).await?,
                        other => bail!("expected connection_ack, got `{other}`: {text}"),
                    }
                }
                Message::Close(frame) => bail!("closed before connection_ack: {frame:?}"),
                _ => {}
            }
        }
        bail!("closed before connection_ack")
    })
    .await
    .context("no connection_ack within 30 s")?;
    acked?;
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": QUERY } });
    send(&mut ws, subscribe.to_string()).await?;
    Ok(ws)
}

async fn send(ws: &mut Ws, text: String) -> anyhow::Result<()> {
    ws.send(Message::text(text))
        .await
        .context("sending on the WebSocket")
}

/// Opens one subscription and listens for a second: `Unsupported` if the
/// server refuses the endpoint or the field.
pub async fn probe(addr: SocketAddr, token: &str) -> anyhow::Result<Option<String>> {
    let mut ws = match open(addr, token).await {
        Ok(ws) => ws,
        Err(Refused::Unsupported(reason)) => return Ok(Some(reason)),
        Err(Refused::Failed(err)) => return Err(err),
    };
    let verdict = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Text(text)) => {
                    let envelope: Envelope = serde_json::from_str(text.as_str()).ok()?;
                    match &*envelope.kind {
                        "error" => {
                            return Some(format!(
                                "the server refused the subscription: {}",
                                envelope.payload.map_or("", |p| p.get())
                            ));
                        }
                        "complete" => {
                            return Some("the server completed the subscription at once".into());
                        }
                        _ => {}
                    }
                }
                Ok(Message::Close(frame)) => {
                    return Some(format!("the server closed the socket: {frame:?}"));
                }
                Err(err) => return Some(format!("the socket failed: {err}")),
                _ => {}
            }
        }
        Some("the server closed the socket".into())
    })
    .await
    .unwrap_or(None);
    let _ = ws.close(None).await;
    Ok(verdict)
}

#[derive(Default)]
pub struct SubscriberResult {
    pub received: u64,
    /// Items the server said it dropped (`LAGGED`).
    pub dropped: u64,
    pub lag_notices: u64,
    pub latencies: Option<Latencies>,
    pub error: Option<String>,
}

pub struct Fanout {
    tasks: Vec<JoinHandle<SubscriberResult>>,
    stop: watch::Sender<bool>,
    received: Arc<AtomicU64>,
    pub connect_failures: u64,
    pub first_connect_error: Option<String>,
    pub connect_time: Duration,
}

impl Fanout {
    /// Opens `count` subscriptions, 32 handshakes at a time.
    pub async fn connect(addr: SocketAddr, token: &str, count: u32) -> anyhow::Result<Self> {
        let started = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let received = Arc::new(AtomicU64::new(0));
        let mut opened = futures::stream::iter(0..count)
            .map(|_| open(addr, token))
            .buffer_unordered(32);
        let mut fanout = Self {
            tasks: Vec::with_capacity(count as usize),
            stop,
            received: received.clone(),
            connect_failures: 0,
            first_connect_error: None,
            connect_time: Duration::ZERO,
        };
        while let Some(result) = opened.next().await {
            match result {
                Ok(ws) => {
                    fanout
                        .tasks
                        .push(tokio::spawn(listen(ws, stopped.clone(), received.clone())))
                }
                Err(Refused::Unsupported(reason)) => bail!("subscription refused: {reason}"),
                Err(Refused::Failed(err)) => {
                    fanout.connect_failures += 1;
                    fanout
                        .first_connect_error
                        .get_or_insert_with(|| format!("{err:#}"));
                }
            }
        }
        fanout.connect_time = started.elapsed();
        Ok(fanout)
    }

    pub fn connected(&self) -> u64 {
        self.tasks.len() as u64
    }

    /// Items received so far, over all subscribers.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Closes every subscription and collects what each saw.
    pub async fn finish(self) -> Vec<SubscriberResult> {
        let _ = self.stop.send(true);
        let mut results = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            results.push(task.await.unwrap_or_else(|err| SubscriberResult {
                error: Some(format!("subscriber task failed: {err}")),
                ..SubscriberResult::default()
            }));
        }
        results
    }
}

/// One subscriber: times each item until told to stop or the socket ends.
async fn listen(
    mut ws: Ws,
    mut stop: watch::Receiver<bool>,
    total: Arc<AtomicU64>,
) -> SubscriberResult {
    let mut result = SubscriberResult::default();
    let mut latencies = Latencies::compact();
    loop {
        let message = tokio::select! {
            _ = stop.changed() => break,
            message = ws.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                result.error = Some(format!("closed by the server: {frame:?}"));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(err)) => {
                result.error = Some(format!("socket error: {err}"));
                break;
            }
            None => {
                result.error = Some("closed by the server".into());
                break;
            }
        };
        let received_at = chrono::Utc::now().timestamp_micros();
        match handle(text.as_str(), received_at, &mut result, &mut latencies) {
            Ok(Reply::None) => {}
            Ok(Reply::Pong) => {
                if send(&mut ws, r#"{"type":"pong"}"#.into()).await.is_err() {
                    break;
                }
            }
            Ok(Reply::Item) => {
                total.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                result.error.get_or_insert(err);
                break;
            }
        }
    }
    let _ = ws.close(None).await;
    result.latencies = Some(latencies);
    result
}

enum Reply {
    None,
    Pong,
    Item,
}

fn handle(
    text: &str,
    received_at: i64,
    result: &mut SubscriberResult,
    latencies: &mut Latencies,
) -> Result<Reply, String> {
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|e| format!("bad message {text}: {e}"))?;
    match &*envelope.kind {
        "next" => {}
        "ping" => return Ok(Reply::Pong),
        "pong" => return Ok(Reply::None),
        "complete" => return Err("the server completed the subscription".into()),
        _ => return Err(format!("unexpected message: {text}")),
    }
    let payload = envelope.payload.map_or("{}", RawValue::get);
    let next: Next =
        serde_json::from_str(payload).map_err(|e| format!("bad next payload {payload}: {e}"))?;
    if let Some(error) = next.errors.first() {
        let extensions = error.extensions.as_ref();
        let code = extensions
            .and_then(|e| e.get("code"))
            .and_then(|c| c.as_str());
        if code == Some("LAGGED") {
            result.lag_notices += 1;
            result.dropped += extensions
                .and_then(|e| e.get("dropped"))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0);
            return Ok(Reply::None);
        }
        return Err(format!("error item: {} ({payload})", error.message));
    }
    let Some(attempt) = next.data.and_then(|d| d.attempt) else {
        return Err(format!("next without deliveryAttempts: {payload}"));
    };
    let started = chrono::DateTime::parse_from_rfc3339(&attempt.started_at)
        .map_err(|e| format!("bad startedAt `{}`: {e}", attempt.started_at))?;
    let finished = started.timestamp_micros() + attempt.duration_ms * 1_000;
    latencies.record_micros(u64::try_from(received_at - finished).unwrap_or(0));
    result.received += 1;
    Ok(Reply::Item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Result<Reply, String>, SubscriberResult, Latencies) {
        let mut result = SubscriberResult::default();
        let mut latencies = Latencies::compact();
        // 2026-01-01T00:00:01.250Z, in microseconds.
        let received_at = 1_767_225_601_250_000;
        let reply = handle(text, received_at, &mut result, &mut latencies);
        (reply, result, latencies)
    }

    #[test]
    fn an_item_is_timed_from_the_end_of_its_attempt() {
        let text = r#"{"id":"1","type":"next","payload":{"data":{"deliveryAttempts":{
            "id":"att_1","startedAt":"2026-01-01T00:00:01.000Z","durationMs":50}}}}"#;
        let (reply, result, latencies) = run(text);
        assert!(matches!(reply, Ok(Reply::Item)));
        assert_eq!(result.received, 1);
        let summary = latencies.summary();
        assert!((summary.p50_ms - 200.0).abs() < 2.0, "{summary:?}");
    }

    #[test]
    fn lagged_notices_count_what_was_dropped() {
        let text = r#"{"id":"1","type":"next","payload":{"data":null,"errors":[
            {"message":"lagged","extensions":{"code":"LAGGED","dropped":17}}]}}"#;
        let (reply, result, _) = run(text);
        assert!(matches!(reply, Ok(Reply::None)));
        assert_eq!(
            (result.received, result.dropped, result.lag_notices),
            (0, 17, 1)
        );
    }

    #[test]
    fn pings_are_answered_and_errors_end_the_subscription() {
        assert!(matches!(run(r#"{"type":"ping"}"#).0, Ok(Reply::Pong)));
        assert!(run(r#"{"id":"1","type":"complete"}"#).0.is_err());
        let error = r#"{"id":"1","type":"next","payload":{"errors":[{"message":"boom"}]}}"#;
        assert!(run(error).0.is_err());
    }
}
