//! GraphQL subscriptions over WebSocket at `/graphql/ws`, speaking
//! `graphql-transport-ws` and the legacy `graphql-ws` ([`protocol`]).
//!
//! One task per socket reads the client's messages and writes the items of
//! its operations, which the [`Multiplexer`] runs (shared between identical
//! subscriptions) and hands over already serialized. Around the protocols:
//! the subprotocol is the first one the *client* offered, a socket that does
//! not send `connection_init` in time is closed with 4408, a refused token
//! closes with 4403 (after a `connection_error` on the legacy protocol), the
//! server pings every 20 s so proxies keep quiet connections open, and
//! sockets close with 1001 when the server stops.
//!
//! A socket lives no longer than its token: at `exp` every running operation
//! gets an `UNAUTHENTICATED` error and its `complete`, and the socket closes
//! with 4403; an operation that arrives after `exp` (before the timer had its
//! turn) closes it the same way instead of running. With an identity
//! provider's JWKS, the token is checked again every half
//! `HOOKLINE_JWKS_MAX_AGE`: once its key has left the set, the socket ends
//! the same way.
//!
//! An operation past 100 on one socket, or a subscription past the tenant's
//! or the instance's cap, is refused with an `error` message
//! (`TOO_MANY_SUBSCRIPTIONS`); the socket stays open.
//!
//! [`Multiplexer`]: crate::graphql::multiplex::Multiplexer

mod credentials;
mod protocol;

use std::sync::Arc;

use async_graphql::{Data, http::ClientMessage};
use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::{
    FutureExt, SinkExt, StreamExt,
    stream::{self, BoxStream, SplitSink},
};
use tokio::time::{Duration, Instant};
use tokio_stream::StreamMap;

use self::protocol::{Protocol, close};
use super::Http;
use crate::{
    auth::{Auth, Principal},
    error::AppError,
    graphql::multiplex::{Payload, token_expired, token_refused},
    time::now_ms,
};

const PING_EVERY: Duration = Duration::from_secs(20);
/// Largest message a client may send (a subscribe with its query).
const MAX_CLIENT_MESSAGE: usize = 256 * 1024;
/// Most messages written together before a flush.
const MAX_BURST: usize = 64;
/// How long a closing socket waits for the client's close frame.
const CLOSE_REPLY_WAIT: Duration = Duration::from_secs(2);
/// Most operations one socket may run at once.
const MAX_OPERATIONS: usize = 100;

pub async fn upgrade(
    State(http): State<Http>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok());
    if !credentials::origin_allowed(&http.state.config.access.cors_origins, &headers) {
        return (
            StatusCode::FORBIDDEN,
            "this origin may not open hookline's WebSocket (HOOKLINE_CORS_ORIGINS)",
        )
            .into_response();
    }
    let Some(protocol) = Protocol::negotiate(offered) else {
        return (
            StatusCode::BAD_REQUEST,
            "offer the graphql-transport-ws or graphql-ws subprotocol",
        )
            .into_response();
    };
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Client messages are small (init, subscribe, complete). A small read
    // buffer matters with many sockets: the default 128 KiB is zeroed on
    // every read, which showed up as a third of the server's CPU with a
    // thousand subscribers.
    ws.protocols([protocol.name()])
        .read_buffer_size(4 * 1024)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| {
            Connection {
                http,
                protocol,
                header,
                credentials: None,
                session: None,
                principal: None,
                operations: StreamMap::new(),
            }
            .serve(socket)
        })
}

/// Items of one operation: whole messages, then `None` once it is over.
type Operation = BoxStream<'static, Option<String>>;

/// What the socket must do after a client message.
enum Step {
    Send(String),
    /// Send these, then close with this code and reason.
    Close(Option<String>, u16, String),
    /// The token ran out: end every operation, then close with 4403.
    Expire,
    /// The token is refused now (its key left the provider's set), for
    /// this reason: end every operation, then close with 4403.
    Refused(String),
    Nothing,
}

struct Connection {
    http: Http,
    protocol: Protocol,
    /// The upgrade request's `Authorization` header.
    header: Option<String>,
    /// What the session was opened with, checked again while it lives.
    credentials: Option<String>,
    /// Set by an accepted `connection_init`.
    session: Option<Arc<Data>>,
    /// Who the session belongs to, for its token's expiry.
    principal: Option<Principal>,
    operations: StreamMap<String, Operation>,
}

impl Connection {
    async fn serve(mut self, socket: WebSocket) {
        let (mut sink, mut incoming) = socket.split();
        let init_deadline = tokio::time::sleep(self.http.state.config.ws_init_timeout);
        tokio::pin!(init_deadline);
        // Armed by `connection_init`; far off until then.
        let expiry = tokio::time::sleep(Duration::from_secs(86_400 * 365));
        tokio::pin!(expiry);
        let mut armed = false;
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        let access = &self.http.state.config.access;
        let provider = access.jwks_url.is_some();
        let every = (access.jwks_max_age / 2).max(Duration::from_millis(50));
        let mut recheck = tokio::time::interval_at(Instant::now() + every, every);
        let shutdown = self.http.state.shutdown.clone();
        // A client that stops reading fills the connection's buffers, and a
        // write then waits for it: bounded, or the socket would hold its
        // subscriptions past its token's expiry and past shutdown.
        let limit = self.http.state.config.ws_write_timeout;
        loop {
            let step = tokio::select! {
                frame = incoming.next() => match frame {
                    Some(Ok(Message::Text(text))) => self.on_message(text.as_bytes()).await,
                    Some(Ok(Message::Binary(bytes))) => self.on_message(&bytes).await,
                    // The WebSocket layer queued the close reply (RFC 6455
                    // §5.5.1); closing the sink sends it, so the client is
                    // not left waiting out its close timeout.
                    Some(Ok(Message::Close(_))) => {
                        let _ = sink.close().await;
                        break;
                    }
                    Some(Err(_)) | None => break,
                    // Ping frames are answered by the WebSocket layer.
                    Some(Ok(_)) => Step::Nothing,
                },
                Some((id, item)) = self.operations.next(), if !self.operations.is_empty() => {
                    Step::Send(self.finish_item(&id, item))
                }
                () = &mut init_deadline, if self.session.is_none() => {
                    Step::Close(None, close::INIT_TIMEOUT, "Connection initialisation timeout".into())
                }
                () = &mut expiry, if armed => Step::Expire,
                _ = recheck.tick(), if provider && self.principal.is_some() => {
                    match credentials::refused(&self.http.state.jwt, self.credentials.as_deref()).await {
                        Some(reason) => Step::Refused(reason),
                        None => Step::Nothing,
                    }
                }
                _ = ping.tick() => {
                    if !written(limit, sink.send(Message::Ping(Default::default()))).await {
                        break;
                    }
                    Step::Nothing
                }
                () = shutdown.cancelled() => Step::Close(None, 1001, "server shutting down".into()),
            };
            let sent = self.take(step, &mut sink, &mut incoming, limit).await;
            if !armed && let Some(principal) = &self.principal {
                let left = principal.expires_at_ms().saturating_sub(now_ms()).max(0);
                expiry
                    .as_mut()
                    .reset(Instant::now() + Duration::from_millis(left.unsigned_abs()));
                armed = true;
            }
            if !sent || !written(limit, self.write_ready_items(&mut sink)).await {
                break;
            }
        }
    }

    /// Does what a client message or a timer asked for; false when the
    /// socket is done (closed, expired, or its client stopped reading).
    async fn take(
        &mut self,
        step: Step,
        sink: &mut SplitSink<WebSocket, Message>,
        incoming: &mut futures::stream::SplitStream<WebSocket>,
        limit: Duration,
    ) -> bool {
        match step {
            Step::Send(text) => written(limit, sink.feed(Message::Text(text.into()))).await,
            Step::Close(last, code, reason) => {
                let close = async {
                    if let Some(text) = last {
                        sink.feed(Message::Text(text.into())).await?;
                    }
                    sink.send(Message::Close(Some(CloseFrame {
                        code,
                        reason: close_reason(reason).into(),
                    })))
                    .await
                };
                if written(limit, close).await {
                    await_close_reply(incoming).await;
                }
                false
            }
            Step::Expire | Step::Refused(_) => {
                let (error, why) = match step {
                    Step::Refused(reason) => (token_refused(reason.clone()), reason),
                    _ => (token_expired(), "token expired".to_owned()),
                };
                if written(limit, self.end_session(sink, error, why)).await {
                    await_close_reply(incoming).await;
                }
                false
            }
            Step::Nothing => true,
        }
    }

    /// Items that are already waiting go out in the same write as what was
    /// just fed: one syscall for a burst instead of one per message.
    async fn write_ready_items(
        &mut self,
        sink: &mut SplitSink<WebSocket, Message>,
    ) -> Result<(), axum::Error> {
        for _ in 0..MAX_BURST {
            let Some(Some((id, item))) = self.operations.next().now_or_never() else {
                break;
            };
            let text = self.finish_item(&id, item);
            sink.feed(Message::Text(text.into())).await?;
        }
        sink.flush().await
    }

    /// The token ran out or is refused now: each running operation gets
    /// `error` and is completed, then the socket closes with 4403 and
    /// `Forbidden: <why>`.
    async fn end_session(
        &mut self,
        sink: &mut SplitSink<WebSocket, Message>,
        error: Payload,
        why: String,
    ) -> Result<(), axum::Error> {
        let ids: Vec<String> = self.operations.keys().cloned().collect();
        for id in ids {
            self.operations.remove(&id);
            let error = protocol::item(&self.protocol.item_prefix(&id), &error);
            sink.feed(Message::Text(error.into())).await?;
            let complete = self.protocol.complete(&id);
            sink.feed(Message::Text(complete.into())).await?;
        }
        sink.send(Message::Close(Some(CloseFrame {
            code: close::FORBIDDEN,
            reason: close_reason(format!("Forbidden: {why}")).into(),
        })))
        .await
    }

    /// An item to send, or the `complete` that ends its operation.
    fn finish_item(&mut self, id: &str, item: Option<String>) -> String {
        match item {
            Some(text) => text,
            None => {
                self.operations.remove(id);
                self.protocol.complete(id)
            }
        }
    }

    async fn on_message(&mut self, bytes: &[u8]) -> Step {
        let message = match ClientMessage::from_bytes(bytes) {
            Ok(message) => message,
            Err(err) => {
                return Step::Close(
                    None,
                    close::INVALID_MESSAGE,
                    format!("Invalid message: {err}"),
                );
            }
        };
        match message {
            ClientMessage::ConnectionInit { payload } => {
                self.init(payload.unwrap_or_default()).await
            }
            ClientMessage::Start { id, payload } => {
                let Some(session) = self.session.clone() else {
                    return Step::Close(None, close::UNAUTHORIZED, "Unauthorized".into());
                };
                if self
                    .principal
                    .as_ref()
                    .is_some_and(|p| p.is_expired(now_ms()))
                {
                    return Step::Expire;
                }
                if self.operations.contains_key(&id) {
                    return Step::Close(
                        None,
                        close::DUPLICATE_ID,
                        format!("Subscriber for {id} already exists"),
                    );
                }
                if let Err(error) = crate::graphql::exact_numbers::check_json(bytes) {
                    return Step::Send(self.protocol.error(
                        &id,
                        &error.to_string(),
                        "BAD_USER_INPUT",
                    ));
                }
                if self.operations.len() >= MAX_OPERATIONS {
                    let refusal = AppError::TooManySubscriptions(format!(
                        "at most {MAX_OPERATIONS} operations may run on one socket"
                    ));
                    return Step::Send(self.refuse(&id, &refusal));
                }
                let items = match self.http.subscriptions.execute(payload, session) {
                    Ok(items) => items,
                    Err(refusal) => return Step::Send(self.refuse(&id, &refusal)),
                };
                let prefix = self.protocol.item_prefix(&id);
                let items = items
                    .map(move |response| Some(protocol::item(&prefix, &response)))
                    .chain(stream::once(async { None }))
                    .boxed();
                self.operations.insert(id, items);
                Step::Nothing
            }
            ClientMessage::Stop { id } => {
                let stopped = self.operations.remove(&id).is_some();
                // The legacy protocol confirms; graphql-transport-ws does not.
                if stopped && self.protocol == Protocol::Legacy {
                    Step::Send(self.protocol.complete(&id))
                } else {
                    Step::Nothing
                }
            }
            ClientMessage::ConnectionTerminate => Step::Close(None, 1000, String::new()),
            ClientMessage::Ping { payload } => Step::Send(Protocol::pong(payload)),
            ClientMessage::Pong { .. } => Step::Nothing,
        }
    }

    /// An operation refused before it ran.
    fn refuse(&self, id: &str, refusal: &AppError) -> String {
        self.protocol
            .error(id, &refusal.to_string(), refusal.code())
    }

    async fn init(&mut self, payload: serde_json::Value) -> Step {
        if self.session.is_some() {
            return Step::Close(
                None,
                close::TOO_MANY_INITS,
                "Too many initialisation requests".into(),
            );
        }
        let credentials = credentials::chosen(&payload, self.header.as_deref());
        match self
            .http
            .state
            .jwt
            .authenticate(credentials.as_deref())
            .await
            .principal()
        {
            Ok(principal) => {
                self.credentials = credentials;
                let mut data = Data::default();
                data.insert(Auth::Valid(principal.clone()));
                self.session = Some(Arc::new(data));
                self.principal = Some(principal.clone());
                Step::Send(self.protocol.ack())
            }
            Err(err) => {
                let message = err.to_string();
                let last = (self.protocol == Protocol::Legacy)
                    .then(|| Protocol::connection_error(&message));
                Step::Close(last, close::FORBIDDEN, format!("Forbidden: {message}"))
            }
        }
    }
}

/// After the server's close frame, reads (and ignores) what the client still
/// sends until its own close frame, for a little while. Dropping the socket
/// at once would make the kernel answer those late messages with a reset,
/// which discards the close frame before the client has read it: the client
/// would see 1006 instead of the code it is owed.
async fn await_close_reply(incoming: &mut futures::stream::SplitStream<WebSocket>) {
    let reply = async {
        while let Some(Ok(message)) = incoming.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_REPLY_WAIT, reply).await;
}

/// Whether `write` went well within `limit`.
async fn written<E>(limit: Duration, write: impl Future<Output = Result<(), E>>) -> bool {
    matches!(tokio::time::timeout(limit, write).await, Ok(Ok(())))
}

/// A close frame's reason is at most 123 bytes.
fn close_reason(mut reason: String) -> String {
    const MAX: usize = 123;
    if reason.len() > MAX {
        let mut end = MAX;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

#[cfg(test)]
mod tests {
    #[test]
    fn close_reasons_fit_a_frame() {
        let long = "é".repeat(100);
        let cut = super::close_reason(long);
        assert!(cut.len() <= 123);
        assert_eq!(cut.chars().count(), 61);
    }
}
