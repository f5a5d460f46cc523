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
