//! GraphQL documents and builders the tests share.

use serde_json::{Value, json};

use super::TestApp;

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

/// Creates a webhook and returns `createWebhook` (`{ secret webhook }`).
pub async fn create_webhook(app: &TestApp, token: &str, input: Value) -> Value {
    let data = app
        .gql
        .ok(token, &create_webhook_doc(), json!({ "input": input }))
        .await;
    data["createWebhook"].clone()
}

pub const PUBLISH: &str = "mutation($input: PublishEventInput!) { publishEvent(input: $input) {
    deliveryCount duplicate event { id type occurredAt data labels } } }";

pub const DELIVERY: &str = "query($id: ID!) { delivery(id: $id) { id status attemptCount nextAttemptAt
    lastResponseStatus eventId webhookId endpointId
    attempts { id attemptNumber outcome responseStatus responseBody errorKind errorMessage durationMs
               startedAt nextAttemptAt endpointUrl } } }";

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

/// Publishes one event and returns `publishEvent`.
pub async fn publish(app: &TestApp, token: &str, event_type: &str, data: Value) -> Value {
    let out = app
        .gql
        .ok(
            token,
            PUBLISH,
            json!({ "input": { "type": event_type, "data": data } }),
        )
        .await;
    out["publishEvent"].clone()
}

/// The deliveries of an event (id and status), waiting until `status` holds
/// for all of them.
pub async fn wait_event_deliveries(
    app: &TestApp,
    token: &str,
    event_id: &str,
    status: &str,
) -> Vec<Value> {
    let what = format!("deliveries of {event_id} to be {status}");
    super::eventually(&what, std::time::Duration::from_secs(15), || async {
        let data = app
            .gql
            .ok(
                token,
                "query($id: ID!) { event(id: $id) { deliveries(first: 100) { edges { node { id status attemptCount } } } } }",
                json!({ "id": event_id }),
            )
            .await;
        let nodes: Vec<Value> = data["event"]["deliveries"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"].clone())
            .collect();
        (!nodes.is_empty() && nodes.iter().all(|n| n["status"] == status)).then_some(nodes)
    })
    .await
}

pub async fn delivery(app: &TestApp, token: &str, id: &str) -> Value {
    app.gql.ok(token, DELIVERY, json!({ "id": id })).await["delivery"].clone()
}
