//! GraphQL subscriptions over WebSocket at `/graphql/ws`, speaking
//! `graphql-transport-ws` and the legacy `graphql-ws`.
//!
//! Around async-graphql's protocol engine this adds what it lacks: the
//! subprotocol is the first one the *client* offered (async-graphql-axum
//! answers one and speaks another when both are offered), a socket that does
//! not send `connection_init` in time is closed with 4408, a refused
//! token closes with 4403 (`graphql-transport-ws`) or a `connection_error`
//! (`graphql-ws`), the server pings every 20 s so proxies keep quiet
//! connections open, and sockets close with 1001 when the server stops.

use std::{
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_graphql::{
    Data,
    http::{WebSocket as GraphQLWebSocket, WebSocketProtocols, WsMessage},
};
use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::{FutureExt, SinkExt, StreamExt};

use super::Http;
use crate::auth::{Auth, JwtKeys};

const PING_EVERY: Duration = Duration::from_secs(20);
/// Largest message a client may send (a subscribe with its query).
const MAX_CLIENT_MESSAGE: usize = 256 * 1024;
/// Most messages written together before a flush.
const MAX_BURST: usize = 64;

pub async fn upgrade(
    State(http): State<Http>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(protocol) = first_supported_protocol(&headers) else {
        return (
            StatusCode::BAD_REQUEST,
            "offer the graphql-transport-ws or graphql-ws subprotocol",
        )
            .into_response();
    };
    let header_auth = http.state.jwt.authenticate(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    // Client messages are small (init, subscribe, complete). A small read
    // buffer matters with many sockets: the default 128 KiB is zeroed on
    // every read, which showed up as a third of the server's CPU with a
    // thousand subscribers.
    ws.protocols([protocol.sec_websocket_protocol()])
        .read_buffer_size(4 * 1024)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(socket, http, protocol, header_auth))
}

/// The first subprotocol in the client's own order that async-graphql speaks.
fn first_supported_protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|offered| WebSocketProtocols::from_str(offered.trim()).ok())
}

async fn serve(socket: WebSocket, http: Http, protocol: WebSocketProtocols, header_auth: Auth) {
    let (mut sink, incoming) = socket.split();
    let incoming = incoming
        .take_while(|message| std::future::ready(message.is_ok()))
        .filter_map(|message| {
            std::future::ready(match message {
                Ok(Message::Text(text)) => Some(text.as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                _ => None,
            })
        });
    let initialised = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicBool::new(false));
    let on_init = {
        let jwt = http.state.jwt.clone();
        let initialised = initialised.clone();
        let refused = refused.clone();
        move |payload: serde_json::Value| async move {
            initialised.store(true, Ordering::Release);
            match init_auth(&jwt, &payload, header_auth).principal().cloned() {
                Ok(principal) => {
                    let mut data = Data::default();
                    data.insert(Auth::Valid(principal));
                    Ok(data)
                }
                Err(err) => {
                    refused.store(true, Ordering::Release);
                    Err(async_graphql::Error::new(err.to_string()))
                }
            }
        }
    };
    let mut messages = GraphQLWebSocket::new(http.subscriptions.clone(), incoming, protocol)
        .on_connection_init(on_init);
    let init_deadline = tokio::time::sleep(http.state.config.ws_init_timeout);
    tokio::pin!(init_deadline);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let shutdown = http.state.shutdown.clone();
    let to_frame = |message: WsMessage| match message {
        WsMessage::Text(text) => Message::Text(text.into()),
        WsMessage::Close(code, reason) => {
            let code = if refused.load(Ordering::Acquire) {
                4403
            } else {
                code
            };
            close(code, &reason)
        }
    };
    loop {
        let outgoing = tokio::select! {
            message = messages.next() => match message {
                Some(message) => to_frame(message),
                None => break,
            },
            () = &mut init_deadline, if !initialised.load(Ordering::Acquire) => {
                close(4408, "Connection initialisation timeout")
            }
            _ = ping.tick() => Message::Ping(Default::default()),
            () = shutdown.cancelled() => close(1001, "server shutting down"),
        };
        let mut closing = matches!(outgoing, Message::Close(_));
        if sink.feed(outgoing).await.is_err() {
            break;
        }
        // Items that are already waiting go out in the same write: one
        // syscall for a burst instead of one per message.
        let mut burst = 0;
        while !closing && burst < MAX_BURST {
            match messages.next().now_or_never() {
                Some(Some(message)) => {
                    let frame = to_frame(message);
                    closing = matches!(frame, Message::Close(_));
                    if sink.feed(frame).await.is_err() {
                        return;
                    }
                    burst += 1;
                }
                Some(None) => {
                    closing = true;
                }
                None => break,
            }
        }
        if sink.flush().await.is_err() || closing {
            break;
        }
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }))
}

/// The credentials of a connection: the `Authorization` entry of the
/// `connection_init` payload when there is one, otherwise the upgrade
/// request's header.
fn init_auth(jwt: &JwtKeys, payload: &serde_json::Value, header_auth: Auth) -> Auth {
    let from_payload = ["Authorization", "authorization"]
        .iter()
        .find_map(|key| payload.get(key))
        .and_then(|value| value.as_str());
    match from_payload {
        Some(value) => jwt.authenticate(Some(value)),
        None => header_auth,
    }
}
