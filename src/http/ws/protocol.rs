//! The two GraphQL-over-WebSocket protocols, as the messages the server
//! sends: `graphql-transport-ws` (the graphql-ws library's protocol) and the
//! legacy `graphql-ws` (Apollo's subscriptions-transport-ws). Client messages
//! are parsed with async-graphql's `ClientMessage`, which knows both.
//!
//! Items are written by splicing the already serialized GraphQL response
//! into a prefix made once per subscription, so a thousand subscribers to the
//! same stream cost a thousand copies of a string, not a thousand
//! serializations.

use std::str::FromStr;

use async_graphql::http::WebSocketProtocols;
use serde_json::json;

/// Close codes of `graphql-transport-ws`, used for both protocols.
pub mod close {
    pub const INVALID_MESSAGE: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`.
    Modern,
    /// `graphql-ws`, the subscriptions-transport-ws protocol.
    Legacy,
}

impl Protocol {
    /// The first protocol in the client's own order that hookline speaks,
    /// from `Sec-WebSocket-Protocol` values.
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        offered
            .into_iter()
            .flat_map(|value| value.split(','))
            .find_map(|name| WebSocketProtocols::from_str(name.trim()).ok())
            .map(|protocol| match protocol {
                WebSocketProtocols::GraphQLWS => Self::Modern,
                WebSocketProtocols::SubscriptionsTransportWS => Self::Legacy,
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Modern => "graphql-transport-ws",
            Self::Legacy => "graphql-ws",
        }
    }

    pub fn ack(self) -> String {
        r#"{"type":"connection_ack"}"#.to_owned()
    }

    /// What precedes a response for subscription `id`; [`item`] completes it.
    pub fn item_prefix(self, id: &str) -> String {
        let kind = match self {
            Self::Modern => "next",
            Self::Legacy => "data",
        };
        format!(r#"{{"type":"{kind}","id":{},"payload":"#, json_string(id))
    }

    pub fn complete(self, id: &str) -> String {
        format!(r#"{{"type":"complete","id":{}}}"#, json_string(id))
    }

    /// An operation refused before it ran.
    pub fn error(self, id: &str, message: &str, code: &str) -> String {
        let error = json!({ "message": message, "extensions": { "code": code } });
        let payload = match self {
            Self::Modern => json!([error]),
            Self::Legacy => error,
        };
        json!({ "type": "error", "id": id, "payload": payload }).to_string()
    }

    /// The legacy protocol's answer to a refused `connection_init`.
    pub fn connection_error(message: &str) -> String {
        json!({ "type": "connection_error", "payload": { "message": message } }).to_string()
    }

    pub fn pong(payload: Option<serde_json::Value>) -> String {
        match payload {
            Some(payload) => json!({ "type": "pong", "payload": payload }).to_string(),
            None => r#"{"type":"pong"}"#.to_owned(),
        }
    }
}

/// A whole item message: `prefix` from [`Protocol::item_prefix`] and a
/// serialized GraphQL response.
pub fn item(prefix: &str, response: &str) -> String {
    let mut message = String::with_capacity(prefix.len() + response.len() + 1);
    message.push_str(prefix);
    message.push_str(response);
    message.push('}');
    message
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn the_clients_first_choice_wins() {
        assert_eq!(
            Protocol::negotiate(["graphql-ws, graphql-transport-ws"]),
            Some(Protocol::Legacy)
        );
        assert_eq!(
            Protocol::negotiate(["chat", "graphql-transport-ws", "graphql-ws"]),
            Some(Protocol::Modern)
        );
        assert_eq!(Protocol::negotiate(["chat, mqtt"]), None);
        assert_eq!(Protocol::negotiate([]), None);
    }

    #[test]
    fn items_are_valid_json_whatever_the_id() {
        let response = r#"{"data":{"n":1}}"#;
        for protocol in [Protocol::Modern, Protocol::Legacy] {
            let id = "a\"b\\c\u{1}é";
            let message: Value =
                serde_json::from_str(&item(&protocol.item_prefix(id), response)).expect("JSON");
            assert_eq!(message["id"], id);
            assert_eq!(message["payload"]["data"]["n"], 1);
            let kind = if protocol == Protocol::Modern {
                "next"
            } else {
                "data"
            };
            assert_eq!(message["type"], kind);
            let complete: Value = serde_json::from_str(&protocol.complete(id)).expect("JSON");
            assert_eq!(complete["id"], id);
        }
    }

    #[test]
    fn errors_take_each_protocols_shape() {
        let modern: Value =
            serde_json::from_str(&Protocol::Modern.error("7", "no", "BAD_USER_INPUT"))
                .expect("JSON");
        assert_eq!(modern["payload"][0]["extensions"]["code"], "BAD_USER_INPUT");
        let legacy: Value =
            serde_json::from_str(&Protocol::Legacy.error("7", "no", "BAD_USER_INPUT"))
                .expect("JSON");
        assert_eq!(legacy["payload"]["message"], "no");
        assert_eq!(legacy["id"], "7");
    }
}
