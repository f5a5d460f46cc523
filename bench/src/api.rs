//! A small GraphQL-over-HTTP client for the operations the bench needs.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::receiver::{EventKey, event_key};

pub const EVENT_TYPE: &str = "conversion.created";

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    url: Arc<str>,
    authorization: Arc<str>,
    /// Events carry the label `affiliateId`, cycling over this many values.
    keys: Option<u64>,
}

#[derive(Deserialize)]
struct Response<T> {
    data: Option<T>,
    #[serde(default)]
    errors: Vec<Value>,
}

/// What `createWebhook` gets.
pub struct WebhookSpec {
    pub name: String,
    pub urls: Vec<String>,
    pub max_attempts: u32,
    pub initial_interval_ms: u64,
    pub max_interval_ms: u64,
    pub timeout_ms: u32,
    /// Ordered delivery by this label (`Some("")`: per endpoint).
    pub ordering: Option<&'static str>,
    /// More `CreateWebhookInput` fields, replacing those above (event
    /// types, filters).
    pub extra: Option<Value>,
}

impl WebhookSpec {
    /// Endpoints that answer at once: a few quick retries, should one fail.
    pub fn healthy(name: &str, urls: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            urls,
            max_attempts: 5,
            initial_interval_ms: 1_000,
            max_interval_ms: 10_000,
            timeout_ms: 10_000,
            ordering: None,
            extra: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct DeliveryStats {
    pub pending: u64,
    pub retrying: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub attempts: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Published {
    event: EventRef,
    delivery_count: u32,
}

#[derive(Deserialize)]
struct EventRef {
    id: String,
}

impl Published {
    fn key(&self) -> anyhow::Result<(EventKey, u32)> {
        let key = event_key(&self.event.id)
            .with_context(|| format!("unexpected event id `{}`", self.event.id))?;
        Ok((key, self.delivery_count))
    }
}

const PUBLISH_ONE: &str = "mutation($input: PublishEventInput!) { \
     publishEvent(input: $input) { event { id } deliveryCount } }";
const PUBLISH_MANY: &str = "mutation($inputs: [PublishEventInput!]!) { \
     publishEvents(inputs: $inputs) { event { id } deliveryCount } }";

/// The event published as number `seq`: a small conversion, labelled with
/// one of `keys` affiliates when given.
fn event_input(seq: u64, keys: Option<u64>) -> Value {
    let mut input = json!({
        "type": EVENT_TYPE,
        "data": {
            "conversionId": format!("conv-{seq}"),
            "offerId": "offer-42",
            "affiliateId": "aff-7",
            "amount": "12.50",
            "currency": "EUR",
        },
    });
    if let Some(keys) = keys {
        input["labels"] = json!({ "affiliateId": format!("aff-{}", seq % keys) });
    }
    input
}

impl Api {
    pub fn new(addr: SocketAddr, token: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1_024)
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Self {
            http,
            url: format!("http://{addr}/graphql").into(),
            authorization: format!("Bearer {token}").into(),
            keys: None,
        })
    }

    /// The same client, publishing events labelled with one of `keys`
    /// affiliates (`affiliateId`).
    pub fn with_keys(&self, keys: u64) -> Self {
        Self {
            keys: Some(keys),
            ..self.clone()
        }
    }

    /// Runs an operation; GraphQL errors become an `Err` with their text.
    pub async fn request<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<T> {
        let body = serde_json::to_vec(&json!({ "query": query, "variables": variables }))?;
        let response = self
            .http
            .post(&*self.url)
            .header("content-type", "application/json")
            .header("authorization", &*self.authorization)
            .body(body)
            .send()
            .await
            .context("sending a GraphQL request")?;
        let status = response.status();
        let bytes = response.bytes().await.context("reading a GraphQL answer")?;
        let answer: Response<T> = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "HTTP {status}, unexpected answer: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )
        })?;
        if let Some(first) = answer.errors.first() {
            bail!("GraphQL error (HTTP {status}): {first}");
        }
        answer
            .data
            .with_context(|| format!("HTTP {status}: no data and no errors"))
    }

    /// Creates a webhook for every event type; returns its id.
    pub async fn create_webhook(&self, spec: &WebhookSpec) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            create_webhook: Created,
        }
        #[derive(Deserialize)]
        struct Created {
            webhook: WebhookRef,
        }
        #[derive(Deserialize)]
        struct WebhookRef {
            id: String,
        }
        let endpoints: Vec<Value> = spec.urls.iter().map(|url| json!({ "url": url })).collect();
        let input = json!({
            "name": spec.name,
            "eventTypes": ["*"],
            "endpoints": endpoints,
            "retryPolicy": {
                "maxAttempts": spec.max_attempts,
                "initialIntervalMs": spec.initial_interval_ms,
                "maxIntervalMs": spec.max_interval_ms,
            },
            "timeoutMs": spec.timeout_ms,
        });
        let mut input = input;
        if let Some(key) = spec.ordering {
            input["ordering"] = json!({ "key": (!key.is_empty()).then_some(key) });
        }
        if let Some(Value::Object(extra)) = &spec.extra {
            for (key, value) in extra {
                input[key] = value.clone();
            }
        }
        let data: Data = self
            .request(
                "mutation($input: CreateWebhookInput!) { \
                 createWebhook(input: $input) { secret webhook { id } } }",
                json!({ "input": input }),
            )
            .await
            .with_context(|| format!("creating webhook `{}`", spec.name))?;
        Ok(data.create_webhook.webhook.id)
    }

    /// Pauses or reactivates a webhook (`PAUSED` / `ACTIVE`).
    pub async fn set_webhook_status(&self, id: &str, status: &str) -> anyhow::Result<()> {
        let _: Value = self
            .request(
                "mutation($id: ID!, $input: UpdateWebhookInput!) { \
                 updateWebhook(id: $id, input: $input) { id status } }",
                json!({ "id": id, "input": { "status": status } }),
            )
            .await?;
        Ok(())
    }

    /// `publishEvent`: the event and how many deliveries it made.
    pub async fn publish_one(&self, seq: u64) -> anyhow::Result<(EventKey, u32)> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            publish_event: Published,
        }
        let data: Data = self
            .request(PUBLISH_ONE, json!({ "input": event_input(seq, self.keys) }))
            .await?;
        data.publish_event.key()
    }

    /// `publishEvents` with events `first..first + count`.
    pub async fn publish_batch(
        &self,
        first: u64,
        count: u64,
    ) -> anyhow::Result<Vec<(EventKey, u32)>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            publish_events: Vec<Published>,
        }
        let inputs: Vec<Value> = (first..first + count)
            .map(|seq| event_input(seq, self.keys))
            .collect();
        let data: Data = self
            .request(PUBLISH_MANY, json!({ "inputs": inputs }))
            .await?;
        data.publish_events.iter().map(Published::key).collect()
    }

    pub async fn delivery_stats(&self) -> anyhow::Result<DeliveryStats> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Data {
            delivery_stats: DeliveryStats,
        }
        let data: Data = self
            .request(
                "{ deliveryStats { pending retrying succeeded failed cancelled attempts } }",
                Value::Null,
            )
            .await?;
        Ok(data.delivery_stats)
    }
}
