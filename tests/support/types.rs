//! Typed views of what the API answers, for tests to read as fields instead
//! of `["data"]["x"]["y"]` lookups.
//!
//! Every struct reads any selection of its type: a field the query did not
//! select reads as its default (empty, 0, `None`), so a test reads only what
//! its query asked for. Nullable fields are `Option`s; enums are their
//! GraphQL names as strings (`"SUCCEEDED"`).

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

/// `value` as a `T`, failing the test with the value when it does not fit.
pub fn parse<T: DeserializeOwned>(value: &Value) -> T {
    serde_json::from_value(value.clone()).unwrap_or_else(|err| {
        panic!(
            "{} does not read as this value: {err}\n{value:#}",
            std::any::type_name::<T>()
        )
    })
}

/// `publishEvent`, and each item of `publishEvents`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Published {
    pub delivery_count: i64,
    pub duplicate: bool,
    pub event: Event,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: Value,
    pub labels: Value,
    pub occurred_at: String,
    pub created_at: String,
    pub idempotency_key: Option<String>,
    pub body: String,
    pub deliveries: Page<Delivery>,
}

/// `createWebhook`: the signing secret is shown this once.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CreatedWebhook {
    pub secret: String,
    pub webhook: Webhook,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    pub name: String,
    pub description: String,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub event_types: Vec<String>,
    pub team: Option<String>,
    pub label_filter: Value,
    pub timeout_ms: i64,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub last_sent_at: Option<String>,
    pub previous_secret_expires_at: Option<String>,
    pub retry_policy: RetryPolicy,
    pub endpoints: Vec<Endpoint>,
    pub deliveries: Page<Delivery>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RetryPolicy {
    pub max_attempts: i64,
    pub initial_interval_ms: i64,
    pub max_interval_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub headers: Vec<Header>,
    pub rate_limit_per_second: Option<i64>,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<String>,
    pub consecutive_failures: i64,
    pub failing_since: Option<String>,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    pub last_hour: AttemptStats,
    pub last_day: AttemptStats,
}

/// An endpoint's attempts over a window.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AttemptStats {
    pub attempts: i64,
    pub succeeded: i64,
    pub success_rate: Option<f64>,
    pub duration_p50_ms: Option<i64>,
    pub duration_p95_ms: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub status: String,
    pub attempt_count: i64,
    pub next_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    pub last_response_status: Option<i64>,
    pub event_id: String,
    pub webhook_id: String,
    pub endpoint_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub attempts: Vec<Attempt>,
    pub event: Event,
    pub webhook: Webhook,
    pub endpoint: Option<Endpoint>,
}

/// A `DeliveryAttempt`, from a delivery's `attempts` or a subscription.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Attempt {
    pub id: String,
    pub attempt_number: i64,
    pub outcome: String,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: i64,
    pub started_at: String,
    pub next_attempt_at: Option<String>,
    pub endpoint_url: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub delivery_id: String,
    pub webhook_id: String,
}

/// A connection (`deliveries`, `events`, `webhooks`, …).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    default,
    rename_all = "camelCase",
    bound(deserialize = "T: Deserialize<'de> + Default")
)]
pub struct Page<T> {
    pub edges: Vec<Edge<T>>,
    pub nodes: Vec<T>,
    pub page_info: PageInfo,
}

// Derived `Default` would ask `T: Default` for no reason.
impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            edges: Vec::new(),
            nodes: Vec::new(),
            page_info: PageInfo::default(),
        }
    }
}

impl<T> Page<T> {
    /// The items, from `edges { node }` or from `nodes`, whichever the query
    /// selected.
    pub fn items(&self) -> Vec<&T> {
        if self.edges.is_empty() {
            self.nodes.iter().collect()
        } else {
            self.edges.iter().map(|edge| &edge.node).collect()
        }
    }

    pub fn len(&self) -> usize {
        self.edges.len().max(self.nodes.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Edge<T> {
    #[serde(default)]
    pub cursor: String,
    #[serde(default)]
    pub node: T,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// `deliveryStats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct DeliveryStats {
    pub pending: u64,
    pub retrying: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub attempts: u64,
}

/// One entry of a response's `errors`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GqlError {
    pub message: String,
    pub path: Value,
    pub extensions: ErrorExtensions,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ErrorExtensions {
    pub code: Option<String>,
    /// The input the error is about (`BAD_USER_INPUT`).
    pub field: Option<String>,
    /// How long to wait before trying again (`RATE_LIMITED`).
    pub retry_after_ms: Option<u64>,
    /// Whatever else an error carries, kept for the failure message.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

impl GqlError {
    /// `extensions.code`, or `"<no code>"` so that a missing code fails an
    /// equality check with something readable.
    pub fn code(&self) -> &str {
        self.extensions.code.as_deref().unwrap_or("<no code>")
    }

    pub fn field(&self) -> Option<&str> {
        self.extensions.field.as_deref()
    }
}

impl std::fmt::Display for GqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| std::fmt::Error)?;
        f.write_str(&json)
    }
}
