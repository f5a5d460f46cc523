//! What a webhook would send for an event, stored or made up, without
//! sending anything: the same rendering a delivery does, per endpoint.

use serde_json::Value;

use super::{DeliveryMethod, Shape, render};
use crate::{
    domain::{
        events::{EventService, render_body},
        labels::{self, Labels},
        targets::Target,
        validate,
        webhooks::{WebhookService, header_pairs},
    },
    error::{AppError, AppResult},
    ids::{EventId, WebhookId},
    time::now_ms,
};

/// Largest sample `data` previewed.
const MAX_SAMPLE_BYTES: usize = 256 * 1024;

/// What to preview with.
pub enum PreviewSource {
    /// A stored event of the tenant.
    Event(EventId),
    /// An event made up for the preview (never stored).
    Sample {
        event_type: String,
        data: Value,
        labels: Option<Value>,
    },
}

pub struct DeliveryPreview {
    pub event_id: EventId,
    /// Whether the webhook subscribes to this event (types and filters).
    pub would_deliver: bool,
    pub requests: Vec<PreviewedRequest>,
}

/// One endpoint's request, as it would be sent now.
pub struct PreviewedRequest {
    pub endpoint_id: String,
    pub method: &'static str,
    pub url: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// `{webhook-id}.{webhook-timestamp}.{content}`: what the signature covers.
    pub signed_content: Option<String>,
    /// Why this request cannot be made (the delivery would fail with it).
    pub error: Option<String>,
}

impl WebhookService {
    pub async fn preview(
        &self,
        tenant: &str,
        webhook_id: &WebhookId,
        source: PreviewSource,
    ) -> AppResult<DeliveryPreview> {
        let record = self.get(tenant, webhook_id).await?;
        let now = now_ms();
        let target = Target::of(&record.webhook, Vec::new());
        let (event_id, body, would_deliver) = match source {
            PreviewSource::Event(id) => {
                let event = EventService::find_on(&self.read, tenant, &id).await?;
                let wants = target.wants_stored(&event);
                (id, event.body, wants)
            }
            PreviewSource::Sample {
                event_type,
                data,
                labels,
            } => {
                validate::json_depth("sample.data", &data)?;
                let labels = match labels {
                    None | Some(Value::Null) => Labels::new(),
                    Some(value) => labels::parse("sample.labels", &value)?,
                };
                let id = EventId::new();
                let body = render_body(&id, event_type.trim(), now, &data);
                if body.len() > MAX_SAMPLE_BYTES {
                    return Err(AppError::bad_input(
                        "sample.data",
                        format!("must be at most {MAX_SAMPLE_BYTES} bytes of JSON"),
                    ));
                }
                let wants = target.wants(event_type.trim(), &labels, &data);
                (id, body, wants)
            }
        };
        let shape = Shape::of(&record.webhook);
        let signing = if record.webhook.public_key.is_some() {
            "v1a,<ed25519 signature of the signed content>"
        } else {
            "v1,<HMAC-SHA256 of the signed content>"
        };
        let body = bytes::Bytes::from(body);
        let timestamp = now / 1000;
        let requests = record
            .endpoints
            .iter()
            .map(|endpoint| request_of(&shape, endpoint, &body, (&event_id, timestamp), signing))
            .collect();
        Ok(DeliveryPreview {
            event_id,
            would_deliver,
            requests,
        })
    }
}

/// One endpoint's request for the event whose envelope is `body`.
fn request_of(
    shape: &Shape,
    endpoint: &entity::endpoint::Model,
    body: &bytes::Bytes,
    (event_id, timestamp): (&EventId, i64),
    signing: &str,
) -> PreviewedRequest {
    let rendered = super::EndpointUrl::of(&endpoint.url).and_then(|url| render(shape, &url, body));
    let mut headers = header_pairs(&endpoint.headers);
    let method = if shape.method == DeliveryMethod::Get {
        "GET"
    } else {
        "POST"
    };
    match rendered {
        Ok(outgoing) => {
            if let Some(content_type) = outgoing.content_type {
                headers.push(("content-type".into(), content_type.into()));
            }
            headers.extend([
                ("webhook-id".into(), event_id.to_string()),
                ("webhook-timestamp".into(), timestamp.to_string()),
                ("webhook-signature".into(), signing.to_owned()),
            ]);
            let content = String::from_utf8_lossy(&outgoing.signed);
            PreviewedRequest {
                endpoint_id: endpoint.id.to_string(),
                method,
                url: Some(outgoing.url.to_string()),
                headers,
                body: (!outgoing.body.is_empty())
                    .then(|| String::from_utf8_lossy(&outgoing.body).into_owned()),
                signed_content: Some(format!("{event_id}.{timestamp}.{content}")),
                error: None,
            }
        }
        Err(error) => PreviewedRequest {
            endpoint_id: endpoint.id.to_string(),
            method,
            url: None,
            headers,
            body: None,
            signed_content: None,
            error: Some(error),
        },
    }
}
