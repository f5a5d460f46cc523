//! A GraphQL-over-WebSocket client speaking either protocol, on
//! tokio-tungstenite (not the server's code).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        Message,
        client::IntoClientRequest,
        http::HeaderValue,
        protocol::{CloseFrame, frame::coding::CloseCode},
    },
};

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    addr: std::net::SocketAddr,
    /// The subprotocol the server chose.
    pub protocol: String,
}

/// How a connection ended, or what it got instead of an ack.
#[derive(Debug)]
pub enum Refusal {
    Closed(u16, String),
    ConnectionError(Value),
}

impl WsClient {
    /// Opens `/graphql/ws` offering `protocols` (in that order, e.g.
    /// `"graphql-ws, graphql-transport-ws"`), optionally with a header token.
    pub async fn connect(
        addr: std::net::SocketAddr,
        protocols: &str,
        header_token: Option<&str>,
    ) -> Self {
        let mut request = format!("ws://{addr}/graphql/ws")
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(protocols).expect("header"),
        );
        if let Some(token) = header_token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
            request.headers_mut().insert("authorization", value);
        }
        let (socket, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket upgrade");
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Self {
            socket,
            addr,
            protocol,
        }
    }

    fn legacy(&self) -> bool {
        self.protocol == "graphql-ws"
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    /// Sends `text` as written (numbers a `Value` cannot hold, malformed JSON).
    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    /// Sends `message` if the socket still takes it (the server may have
    /// closed it already).
    pub async fn try_send(&mut self, message: Value) -> bool {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .is_ok()
    }

    /// The next protocol message if one comes within `within`.
    pub async fn poll(&mut self, within: Duration) -> Option<Result<Value, Refusal>> {
        match tokio::time::timeout(within, self.socket.next()).await {
            Err(_) => None,
            Ok(None) => Some(Err(Refusal::Closed(1006, "stream ended".into()))),
            Ok(Some(Ok(Message::Text(text)))) => {
                let value: Value = serde_json::from_str(&text).expect("JSON message");
                if matches!(value["type"].as_str(), Some("ka" | "ping" | "pong")) {
                    return None;
                }
                Some(Ok(value))
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                let (code, reason) = frame.map_or((1005, String::new()), |f: CloseFrame| {
                    (u16::from(f.code), f.reason.to_string())
                });
                Some(Err(Refusal::Closed(code, reason)))
            }
            Ok(Some(Ok(_))) => None,
            Ok(Some(Err(err))) => Some(Err(Refusal::Closed(1006, err.to_string()))),
        }
    }

    /// Every message until the server closes the socket, and the close code
    /// and reason (1006 when it dropped without a close frame).
    pub async fn until_closed(&mut self, within: Duration) -> (Vec<Value>, u16, String) {
        let mut messages = Vec::new();
        loop {
            match self.recv(within).await {
                Ok(message) => messages.push(message),
                Err(Refusal::Closed(code, reason)) => return (messages, code, reason),
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The next protocol message, skipping pings and keep-alives.
    pub async fn recv(&mut self, within: Duration) -> Result<Value, Refusal> {
        loop {
            let frame = tokio::time::timeout(within, self.socket.next())
                .await
                .expect("a message in time")
                .expect("socket open");
            match frame {
                Ok(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON message");
                    if matches!(value["type"].as_str(), Some("ka" | "ping" | "pong")) {
                        continue;
                    }
                    return Ok(value);
                }
                Ok(Message::Close(frame)) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f: CloseFrame| {
                        (u16::from(f.code), f.reason.to_string())
                    });
                    return Err(Refusal::Closed(code, reason));
                }
                Ok(_) => continue,
                Err(err) => return Err(Refusal::Closed(1006, err.to_string())),
            }
        }
    }

    /// Returns once the server has read everything sent before: a query sent
    /// now is answered only after the messages ahead of it were handled
    /// (a socket's messages are handled in order). Any other message arriving
    /// meanwhile fails the test.
    pub async fn barrier(&mut self) {
        let id = format!("barrier-{}", ulid::Ulid::new());
        let kind = if self.legacy() { "start" } else { "subscribe" };
        self.send(json!({ "id": id, "type": kind, "payload": { "query": "{ __typename }" } }))
            .await;
        loop {
            let message = self
                .recv(Duration::from_secs(10))
                .await
                .expect("the socket stays open");
            assert_eq!(
                message["id"],
                id.as_str(),
                "a message before the barrier: {message}"
            );
            if message["type"] == "complete" {
                return;
            }
        }
    }

    /// Sends `connection_init` and waits for the ack.
    pub async fn init(&mut self, payload: Value) -> Result<(), Refusal> {
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        let reply = self.recv(Duration::from_secs(5)).await?;
        match reply["type"].as_str() {
            Some("connection_ack") => Ok(()),
            Some("connection_error") => Err(Refusal::ConnectionError(reply["payload"].clone())),
            other => panic!("unexpected reply to connection_init: {other:?} {reply}"),
        }
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.legacy() { "start" } else { "subscribe" };
        self.send(json!({ "id": id, "type": kind, "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// Subscribes as `id` and waits until the server counts one more live
    /// subscription execution (`hookline_subscribers` on `/metrics`): from
    /// then on, news reaches it. A subscription identical to one already open
    /// on the server (same query, variables, tenant and role) shares that
    /// one's execution and is not counted again: `subscribe`, then
    /// [`Self::barrier`], for it.
    pub async fn subscribe_listening(&mut self, id: &str, query: &str, variables: Value) {
        let addr = self.addr;
        let live = || async move {
            super::app::scrape_metric(addr, "hookline_subscribers")
                .await
                .unwrap_or(0.0)
        };
        let before = live().await;
        self.subscribe(id, query, variables).await;
        self.barrier().await;
        super::eventually(
            "the subscription to listen",
            Duration::from_secs(10),
            || async { (live().await > before).then_some(()) },
        )
        .await;
    }

    /// The payload of the next item (`next`, or `data` on the legacy protocol).
    pub async fn next_payload(&mut self, within: Duration) -> Value {
        let message = self.recv(within).await.expect("an item");
        let expected = if self.legacy() { "data" } else { "next" };
        assert_eq!(
            message["type"], expected,
            "message type for {}: {message}",
            self.protocol
        );
        message["payload"].clone()
    }

    /// Asserts nothing arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(quiet, self.socket.next()).await
        {
            panic!("expected nothing, got {text}");
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .socket
            .close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }

    /// Closes with 1000 as a client library does, and waits for the server's
    /// close frame (RFC 6455 §5.5.1): its code, or `None` when the
    /// connection ended without one or nothing came `within`.
    pub async fn close_and_await_reply(mut self, within: Duration) -> Option<u16> {
        self.socket
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            })))
            .await
            .expect("send close");
        let reply = async {
            while let Some(frame) = self.socket.next().await {
                match frame {
                    Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            }
            None
        };
        tokio::time::timeout(within, reply).await.ok().flatten()
    }
}
