//! The searchable log: `deliveries` and `deliveryAttempts` narrowed by time
//! range, status or outcome, webhook, endpoint, event type and HTTP status,
//! newest first, with each attempt's response body, within the tenant.

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    fixtures::*,
    gql::Gql,
    receiver::{Receiver, Reply},
    types::{Attempt, Delivery, Page},
};

const DELIVERIES: &str =
    "query($filter: DeliveryFilter) { deliveries(first: 100, filter: $filter) {
    edges { node { id status lastResponseStatus webhookId endpointId } } } }";
const ATTEMPTS: &str = "query($filter: AttemptFilter, $first: Int, $after: String) {
    deliveryAttempts(first: $first, after: $after, filter: $filter) {
      edges { cursor node { id attemptNumber outcome responseStatus responseBody startedAt
        eventType webhookId endpointId deliveryId } }
      pageInfo { hasNextPage endCursor } } }";

async fn deliveries(on: &impl AsRef<Gql>, token: &str, filter: Value) -> Vec<Delivery> {
    let page: Page<Delivery> = on
        .as_ref()
        .field(token, DELIVERIES, json!({ "filter": filter }))
        .await;
    page.items().into_iter().cloned().collect()
}

async fn attempts(on: &impl AsRef<Gql>, token: &str, filter: Value) -> Vec<Attempt> {
    let page: Page<Attempt> = on
        .as_ref()
        .field(token, ATTEMPTS, json!({ "filter": filter, "first": 100 }))
        .await;
    page.items().into_iter().cloned().collect()
}

#[tokio::test]
async fn deliveries_and_attempts_are_found_by_every_filter_newest_first() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let ok = Receiver::ok().await;
    let broken = Receiver::start(|_| Reply::Raw(500, b"upstream exploded")).await;
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let healthy = create_webhook(
        &app,
        &admin,
        fast_webhook(&ok.url, &["offer.*", "click.created"], 3),
    )
    .await;
    let failing = create_webhook(
        &app,
        &admin,
        fast_webhook(&broken.url, &["offer.created"], 2),
    )
    .await;
    let (healthy_id, failing_id) = (&healthy.webhook.id, &failing.webhook.id);
    publish(&app, &admin, "offer.created", json!({})).await;
    publish(&app, &admin, "click.created", json!({})).await;
    publish(&app, &admin, "offer.updated", json!({})).await;
    wait_settled(&app, &admin, WAIT).await;

    // Deliveries: 3 to the healthy webhook, 1 (failed twice) to the other.
    assert_eq!(deliveries(&app, &admin, json!({})).await.len(), 4);
    let offers = deliveries(&app, &admin, json!({ "eventType": "offer.created" })).await;
    assert_eq!(offers.len(), 2, "{offers:?}");
    let failed = deliveries(&app, &admin, json!({ "httpStatus": 500 })).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, "FAILED");
    assert_eq!(&failed[0].webhook_id, failing_id);
    let failed = deliveries(
        &app,
        &admin,
        json!({ "status": "FAILED", "webhookId": healthy_id }),
    )
    .await;
    assert!(failed.is_empty());
    let since = json!({ "since": started.to_rfc3339() });
    assert_eq!(deliveries(&app, &admin, since).await.len(), 4);
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert!(
        deliveries(&app, &admin, json!({ "since": later }))
            .await
            .is_empty()
    );
    assert!(
        deliveries(&app, &admin, json!({ "until": started.to_rfc3339() }))
            .await
            .is_empty()
    );

    // Attempts: 3 successes, 2 failures with what the receiver answered.
    let all = attempts(&app, &admin, json!({})).await;
    assert_eq!(all.len(), 5, "{all:?}");
    assert!(
        all.windows(2).all(|w| w[0].started_at >= w[1].started_at),
        "newest first: {all:?}"
    );
    let failures = attempts(&app, &admin, json!({ "outcome": "FAILED" })).await;
    assert_eq!(failures.len(), 2);
    assert_eq!(failures[0].attempt_number, 2, "newest first");
    assert_eq!(
        failures[0].response_body.as_deref(),
        Some("upstream exploded")
    );
    assert_eq!(failures[0].event_type, "offer.created");
    let by_endpoint = attempts(
        &app,
        &admin,
        json!({ "endpointId": failing.webhook.endpoints[0].id }),
    )
    .await;
    assert_eq!(by_endpoint, failures);
    assert_eq!(
        attempts(&app, &admin, json!({ "httpStatus": 200 }))
            .await
            .len(),
        3
    );
    assert_eq!(
        attempts(&app, &admin, json!({ "webhookId": healthy_id }))
            .await
            .len(),
        3
    );
    let clicks = attempts(&app, &admin, json!({ "eventType": "click.created" })).await;
    assert_eq!(clicks.len(), 1);
    assert_eq!(&clicks[0].webhook_id, healthy_id);
    let one = attempts(
        &app,
        &admin,
        json!({ "deliveryId": failures[0].delivery_id }),
    )
    .await;
    assert_eq!(one.len(), 2);
    let narrow = json!({ "webhookId": failing_id, "eventType": "offer.updated" });
    assert!(attempts(&app, &admin, narrow).await.is_empty());

    // Pages of two, newest first, cover the log once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: Page<Attempt> = app
            .gql
            .field(&admin, ATTEMPTS, json!({ "first": 2, "after": after }))
            .await;
        seen.extend(page.items().into_iter().map(|a| a.id.clone()));
        if !page.page_info.has_next_page {
            break;
        }
        after = page.page_info.end_cursor.clone();
    }
    let ids: Vec<String> = all.iter().map(|a| a.id.clone()).collect();
    assert_eq!(seen, ids);

    // Another tenant sees none of it.
    let other = app.admin("globex");
    assert!(attempts(&app, &other, json!({})).await.is_empty());
    assert!(
        deliveries(&app, &other, json!({ "eventType": "offer.created" }))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_log_filter_is_checked() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let err = app
        .gql
        .err(
            Some(&admin),
            ATTEMPTS,
            json!({ "filter": { "eventType": "x".repeat(201) } }),
        )
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT", "{err:?}");
    let err = app
        .gql
        .err(Some(&admin), ATTEMPTS, json!({ "first": 0 }))
        .await;
    assert_eq!(err.code(), "BAD_USER_INPUT", "{err:?}");
}
