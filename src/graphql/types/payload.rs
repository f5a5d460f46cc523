//! How a webhook's requests look: body format and method.

use async_graphql::{Enum, ID, SimpleObject};

use super::webhook::Header;
use crate::domain::payload::preview;

/// What a webhook's `POST` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(remote = "crate::domain::payload::PayloadFormat")]
pub enum PayloadFormat {
    /// `{"id","type","timestamp","data"}`: the event with its envelope (the default).
    Envelope,
    /// The event's `data` alone, byte for byte as published (keys in their
    /// order), for receivers that expect the object itself.
    DataOnly,
    /// `bodyTemplate` rendered for each event: values are written as JSON
    /// (`{{ data.name }}` is `"Ann"`), and the result must be JSON.
    Template,
}

/// How a webhook's requests are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(remote = "crate::domain::payload::DeliveryMethod")]
pub enum DeliveryMethod {
    /// A `POST` with a JSON body (see `PayloadFormat`). The default.
    Post,
    /// A postback: `GET` the endpoint URL, its macros filled in
    /// (`?click_id={{ data.clickId }}`), without a body. Signed over the
    /// request's path and query in place of a body.
    Get,
    /// A postback as a form: `POST` the URL's query, macros filled in, as an
    /// `application/x-www-form-urlencoded` body to the URL without it.
    PostForm,
}

/// What a webhook would send for one event, computed without sending.
#[derive(SimpleObject)]
pub struct DeliveryPreview {
    /// The event's id (`webhook-id`); a sample gets a fresh one.
    event_id: ID,
    /// Whether the webhook subscribes to the event: its types and filters.
    would_deliver: bool,
    /// One request per endpoint.
    requests: Vec<PreviewRequest>,
}

/// One endpoint's request, exactly as it would be sent now, but for the
/// signature itself, which is only ever computed for a real delivery.
#[derive(SimpleObject)]
pub struct PreviewRequest {
    endpoint_id: ID,
    /// `POST` or `GET`.
    method: String,
    /// The URL requested, macros filled in; null when it cannot be rendered.
    url: Option<String>,
    /// The endpoint's custom headers, `content-type` and the Standard
    /// Webhooks headers (`webhook-signature` describes what it will hold).
    headers: Vec<Header>,
    /// The body; null for a `GET` postback.
    body: Option<String>,
    /// What the signature covers: `{webhook-id}.{webhook-timestamp}.{body}`,
    /// or for `GET` the path and query in place of the body.
    signed_content: Option<String>,
    /// Why this request cannot be made: its delivery would fail with this
    /// (`errorKind: RENDER`).
    error: Option<String>,
}

impl From<preview::DeliveryPreview> for DeliveryPreview {
    fn from(found: preview::DeliveryPreview) -> Self {
        Self {
            event_id: found.event_id.to_string().into(),
            would_deliver: found.would_deliver,
            requests: found
                .requests
                .into_iter()
                .map(|r| PreviewRequest {
                    endpoint_id: r.endpoint_id.into(),
                    method: r.method.to_owned(),
                    url: r.url,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(name, value)| Header { name, value })
                        .collect(),
                    body: r.body,
                    signed_content: r.signed_content,
                    error: r.error,
                })
                .collect(),
        }
    }
}
