//! GraphQL documents and typed operations the tests share. Each operation
//! takes anything that holds a [`Gql`] client: a [`super::TestApp`], a
//! [`super::process::ServerProcess`]'s client, or a `Gql` itself.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    eventually,
    gql::Gql,
    types::{CreatedWebhook, Delivery, DeliveryStats, Page, Published, Webhook},
};

/// How long the waiting helpers below wait before failing the test.
pub const WAIT: Duration = Duration::from_secs(15);

pub const WEBHOOK_FIELDS: &str = "id name description status disabledReason eventTypes team
    labelFilter timeoutMs createdBy createdAt updatedAt lastSentAt
    retryPolicy { maxAttempts initialIntervalMs maxIntervalMs }
    endpoints { id url headers { name value } }";

pub fn create_webhook_doc() -> String {
    format!(
        "mutation($input: CreateWebhookInput!) {{ createWebhook(input: $input) {{ secret webhook {{ {WEBHOOK_FIELDS} }} }} }}"
    )
}

/// A valid webhook input pointing at `url`, to tweak per test.
pub fn webhook_input(url: &str) -> Value {
    json!({
        "name": "Conversions to CRM",
        "description": "Approved conversions go to the CRM",
        "eventTypes": ["conversion.status_changed", "offer.*"],
        "endpoints": [{ "url": url, "headers": [{ "name": "X-Api-Key", "value": "k-123" }] }],
    })
}

/// A webhook input with a fast retry policy, for tests that watch retries.
pub fn fast_webhook(url: &str, event_types: &[&str], max_attempts: u32) -> Value {
    json!({
        "name": "fast",
        "eventTypes": event_types,
        "endpoints": [{ "url": url }],
        "retryPolicy": { "maxAttempts": max_attempts, "initialIntervalMs": 100, "maxIntervalMs": 2000 },
        "timeoutMs": 2000,
    })
}

/// Creates a webhook, which must succeed.
pub async fn create_webhook(on: &impl AsRef<Gql>, token: &str, input: Value) -> CreatedWebhook {
    on.as_ref()
        .field(token, &create_webhook_doc(), json!({ "input": input }))
        .await
}

/// A webhook by id, every scalar field of it.
pub async fn webhook(on: &impl AsRef<Gql>, token: &str, id: &str) -> Webhook {
    let query = format!("query($id: ID!) {{ webhook(id: $id) {{ {WEBHOOK_FIELDS} }} }}");
    on.as_ref().field(token, &query, json!({ "id": id })).await
}

pub const PUBLISH: &str = "mutation($input: PublishEventInput!) { publishEvent(input: $input) {
    deliveryCount duplicate event { id type occurredAt data labels } } }";

pub const PUBLISH_MANY: &str =
    "mutation($inputs: [PublishEventInput!]!) { publishEvents(inputs: $inputs) {
    deliveryCount duplicate event { id type occurredAt data labels } } }";

/// Publishes one event of `event_type` carrying `data`, which must succeed.
pub async fn publish(
    on: &impl AsRef<Gql>,
    token: &str,
    event_type: &str,
    data: Value,
) -> Published {
    publish_input(on, token, json!({ "type": event_type, "data": data })).await
}

/// Publishes a whole `PublishEventInput` (labels, idempotency key, …).
pub async fn publish_input(on: &impl AsRef<Gql>, token: &str, input: Value) -> Published {
    on.as_ref()
        .field(token, PUBLISH, json!({ "input": input }))
        .await
}

/// Publishes a batch, which must succeed.
pub async fn publish_many(on: &impl AsRef<Gql>, token: &str, inputs: Vec<Value>) -> Vec<Published> {
    on.as_ref()
        .field(token, PUBLISH_MANY, json!({ "inputs": inputs }))
        .await
}

pub const DELIVERY: &str = "query($id: ID!) { delivery(id: $id) { id status attemptCount nextAttemptAt
    lastResponseStatus eventId webhookId endpointId
    attempts { id attemptNumber outcome responseStatus responseBody errorKind errorMessage durationMs
               startedAt nextAttemptAt endpointUrl } } }";

/// A delivery with its attempts.
/// The token's first 100 deliveries (newest first), each with `fields`.
pub async fn delivery_nodes(on: &impl AsRef<Gql>, token: &str, fields: &str) -> Vec<Value> {
    let query = format!("{{ deliveries(first: 100) {{ edges {{ node {{ {fields} }} }} }} }}");
    let data = on.as_ref().ok(token, &query, json!({})).await;
    data["deliveries"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|edge| edge["node"].clone())
        .collect()
}

pub async fn delivery(on: &impl AsRef<Gql>, token: &str, id: &str) -> Delivery {
    on.as_ref()
        .field(token, DELIVERY, json!({ "id": id }))
        .await
}

/// The deliveries of an event (id, status, attemptCount), waiting until
/// there are some and `status` holds for all of them.
pub async fn wait_event_deliveries(
    on: &impl AsRef<Gql>,
    token: &str,
    event_id: &str,
    status: &str,
) -> Vec<Delivery> {
    let what = format!("deliveries of {event_id} to be {status}");
    eventually(&what, WAIT, || async {
        let page: Page<Delivery> = on
            .as_ref()
            .field::<super::types::Event>(
                token,
                "query($id: ID!) { event(id: $id) { deliveries(first: 100) { edges { node { id status attemptCount } } } } }",
                json!({ "id": event_id }),
            )
            .await
            .deliveries;
        let nodes: Vec<Delivery> = page.items().into_iter().cloned().collect();
        (!nodes.is_empty() && nodes.iter().all(|n| n.status == status)).then_some(nodes)
    })
    .await
}

/// The tenant's delivery counts by status, and its attempts.
pub async fn delivery_stats(on: &impl AsRef<Gql>, token: &str) -> DeliveryStats {
    on.as_ref()
        .field(
            token,
            "{ deliveryStats { pending retrying succeeded failed cancelled attempts } }",
            json!({}),
        )
        .await
}

/// Polls the tenant's delivery counts until `done` holds, and returns them.
pub async fn wait_stats(
    on: &impl AsRef<Gql>,
    token: &str,
    what: &str,
    within: Duration,
    done: impl Fn(&DeliveryStats) -> bool,
) -> DeliveryStats {
    eventually(what, within, || async {
        let stats = delivery_stats(on, token).await;
        done(&stats).then_some(stats)
    })
    .await
}

/// Polls until nothing is PENDING or RETRYING: every delivery has settled.
pub async fn wait_settled(on: &impl AsRef<Gql>, token: &str, within: Duration) -> DeliveryStats {
    wait_stats(on, token, "every delivery to settle", within, |s| {
        s.pending == 0 && s.retrying == 0
    })
    .await
}
