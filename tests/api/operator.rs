//! The admin's actions on deliveries: retry, cancel, resend, replay, test.

use std::time::Duration;

use hookline::auth::Role;
use serde_json::{Value, json};

use crate::support::{
    TestApp,
    fixtures::*,
    receiver::{Receiver, Reply},
    types::Delivery,
};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_failed_delivery_can_be_retried_by_hand() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::start(|n| {
        if n == 0 {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    create_webhook(
        &app,
        &admin,
        fast_webhook(&receiver.url, &["offer.created"], 1),
    )
    .await;
    let published = publish(&app, &admin, "offer.created", json!({})).await;
    let failed = wait_event_deliveries(&app, &admin, &published.event.id, "FAILED").await;
    let id = failed[0].id.as_str();

    let viewer = app.token("acme", Role::Viewer);
    let retry = "mutation($id: ID!) { retryDelivery(id: $id) { id status } }";
    assert_eq!(
        app.gql
            .err(Some(&viewer), retry, json!({ "id": id }))
            .await
            .code(),
        "FORBIDDEN"
    );
    let retried: Delivery = app.gql.field(&admin, retry, json!({ "id": id })).await;
    assert_eq!(retried.status, "RETRYING");

    let done = wait_event_deliveries(&app, &admin, &published.event.id, "SUCCEEDED").await;
    assert_eq!(done[0].attempt_count, 2);
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn a_retrying_delivery_can_be_cancelled() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::start(|_| Reply::Status(500)).await;
    let mut input = fast_webhook(&receiver.url, &["offer.created"], 5);
    input["retryPolicy"] =
        json!({ "maxAttempts": 5, "initialIntervalMs": 60000, "maxIntervalMs": 60000 });
    create_webhook(&app, &admin, input).await;
    let published = publish(&app, &admin, "offer.created", json!({})).await;
    let retrying = wait_event_deliveries(&app, &admin, &published.event.id, "RETRYING").await;
    let id = retrying[0].id.as_str();
    let cancel = "mutation($id: ID!) { cancelDelivery(id: $id) { status nextAttemptAt } }";
    let cancelled: Delivery = app.gql.field(&admin, cancel, json!({ "id": id })).await;
    assert_eq!(
        (cancelled.status.as_str(), cancelled.next_attempt_at),
        ("CANCELLED", None)
    );
    let again = app.gql.err(Some(&admin), cancel, json!({ "id": id })).await;
    assert_eq!(again.code(), "CONFLICT");
    assert_eq!(
        app.gql
            .err(Some(&app.admin("globex")), cancel, json!({ "id": id }))
            .await
            .code(),
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn resend_replay_and_test_pings_create_new_deliveries() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    let bystander = Receiver::ok().await;
    let created = create_webhook(&app, &admin, fast_webhook(&receiver.url, &["offer.*"], 3)).await;
    create_webhook(&app, &admin, fast_webhook(&bystander.url, &["*"], 3)).await;
    let webhook_id = created.webhook.id.as_str();
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let offer = publish(&app, &admin, "offer.created", json!({ "n": 1 })).await;
    publish(&app, &admin, "affiliate.created", json!({ "n": 2 })).await;
    publish(&app, &admin, "offer.updated", json!({ "n": 3 })).await;
    receiver.wait_for(2, WAIT).await;
    bystander.wait_for(3, WAIT).await;

    let resent = app
        .gql
        .ok(
            &admin,
            "mutation($e: ID!, $w: ID!) { resendEvent(eventId: $e, webhookId: $w) { deliveries { id status } } }",
            json!({ "e": offer.event.id, "w": webhook_id }),
        )
        .await;
    assert_eq!(
        resent["resendEvent"]["deliveries"]
            .as_array()
            .expect("list")
            .len(),
        1
    );
    receiver.wait_for(3, WAIT).await;
    // Replay leaves deliveries still being recorded alone: wait until the
    // resend has settled.
    wait_settled(&app, &admin, WAIT).await;

    let replayed = app
        .gql
        .ok(
            &admin,
            "mutation($w: ID!, $since: DateTime!) { replayWebhook(id: $w, since: $since,
                statuses: [SUCCEEDED, FAILED, CANCELLED]) { deliveryCount } }",
            json!({ "w": webhook_id, "since": since.to_rfc3339() }),
        )
        .await;
    assert_eq!(
        replayed["replayWebhook"]["deliveryCount"], 2,
        "the two offer events, not the affiliate one"
    );
    receiver.wait_for(5, WAIT).await;

    let test = app
        .gql
        .ok(&admin, "mutation($w: ID!) { sendTestEvent(webhookId: $w) { event { type } deliveries { id } } }", json!({ "w": webhook_id }))
        .await;
    assert_eq!(test["sendTestEvent"]["event"]["type"], "webhook.test");
    let arrivals = receiver.wait_for(6, WAIT).await;
    let last = arrivals.last().expect("ping");
    assert_eq!(last.json()["type"], "webhook.test");
    assert_eq!(last.json()["data"]["webhookId"], webhook_id);

    // Time for a wrong delivery to the bystander to arrive: none may.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        bystander.count(),
        3,
        "resends, replays and pings reach only the chosen webhook"
    );
    let ops: [(&str, Value); 3] = [
        (
            "mutation($w: ID!) { sendTestEvent(webhookId: $w) { event { id } } }",
            json!({ "w": webhook_id }),
        ),
        (
            "mutation($w: ID!) { replayWebhook(id: $w, since: \"2020-01-01T00:00:00Z\") { deliveryCount } }",
            json!({ "w": webhook_id }),
        ),
        (
            "mutation($e: ID!, $w: ID!) { resendEvent(eventId: $e, webhookId: $w) { deliveries { id } } }",
            json!({ "e": offer.event.id, "w": webhook_id }),
        ),
    ];
    for (doc, vars) in ops {
        let err = app
            .gql
            .err(Some(&app.token("acme", Role::Publisher)), doc, vars.clone())
            .await;
        assert_eq!(err.code(), "FORBIDDEN", "{doc}");
        let err = app.gql.err(Some(&app.admin("globex")), doc, vars).await;
        assert_eq!(err.code(), "NOT_FOUND", "{doc}");
    }
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::start(|n| {
        if n == 0 {
            Reply::WithHeaders(429, vec![("retry-after", "1".to_owned())])
        } else {
            Reply::Status(200)
        }
    })
    .await;
    create_webhook(
        &app,
        &admin,
        fast_webhook(&receiver.url, &["offer.created"], 3),
    )
    .await;
    publish(&app, &admin, "offer.created", json!({})).await;
    let arrivals = receiver.wait_for(2, WAIT).await;
    let gap = arrivals[1].at - arrivals[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "waited {gap:?}, the endpoint asked for 1s"
    );
}

#[tokio::test]
async fn during_a_rotation_both_secrets_sign() {
    use crate::support::verify::verify;
    let app = TestApp::spawn().await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    let created = create_webhook(&app, &admin, webhook_input(&receiver.url)).await;
    let old_secret = created.secret.clone();
    let rotated = app
        .gql
        .ok(
            &admin,
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
            json!({ "id": created.webhook.id }),
        )
        .await;
    let new_secret = rotated["rotateWebhookSecret"]["secret"]
        .as_str()
        .expect("secret");
    publish(&app, &admin, "offer.created", json!({})).await;
    let request = receiver.wait_for(1, WAIT).await.remove(0);
    assert_eq!(request.header("webhook-signature").split(' ').count(), 2);
    verify(new_secret, &request).expect("the new secret verifies");
    verify(&old_secret, &request).expect("the old secret still verifies during the grace period");
}
