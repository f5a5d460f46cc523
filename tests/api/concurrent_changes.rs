//! Changes to one webhook made at the same time take effect one after the
//! other, each from what the one before it left: none is undone by another,
//! and none is acknowledged with a result that was never stored. Both
//! databases run these: on SQLite too, a change read before its transaction
//! waited its turn at the one writer while others committed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde_json::{Value, json};

use crate::support::{TestApp, fixtures::*, gql::error_code, receiver::Receiver, verify::verify};

const ROTATE: &str =
    "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { updatedAt } } }";
const UPDATE: &str = "mutation($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) { payloadFormat method } }";
const AT_ONCE: usize = 8;

/// A rotation's answer: when it was stored (each change to a webhook is
/// stamped strictly later than the one before) and the secret it issued.
fn issued(data: &Value) -> (DateTime<Utc>, String) {
    let rotated = &data["rotateWebhookSecret"];
    let at = rotated["webhook"]["updatedAt"].as_str().expect("updatedAt");
    let at = DateTime::parse_from_rfc3339(at).expect("RFC 3339").to_utc();
    (at, rotated["secret"].as_str().expect("secret").to_owned())
}

/// Eight rotations at once form one chain: in the order they were stored,
/// each kept the secret the one before it issued as its previous. So the
/// next request is signed by exactly the last secret issued and the one
/// before it, and no longer by the webhook's first. When the secret was read
/// before the writing transaction, all eight read the first one and kept it:
/// it went on signing through the grace period, and the secrets seven
/// callers were given never signed at all.
#[tokio::test]
async fn rotations_at_once_each_replace_the_secret_the_one_before_issued() {
    let app = TestApp::spawn().await;
    let token = app.admin("acme");
    let receiver = Receiver::ok().await;
    let input = fast_webhook(&receiver.url, &["conversion.created"], 1);
    let created = create_webhook(&app, &token, input).await;
    let id = created.webhook.id;

    let rotations = (0..AT_ONCE).map(|_| app.gql.ok(&token, ROTATE, json!({ "id": id })));
    let mut chain: Vec<_> = join_all(rotations).await.iter().map(issued).collect();
    chain.sort();
    chain.dedup_by_key(|(at, _)| *at);
    assert_eq!(
        chain.len(),
        AT_ONCE,
        "each rotation stored after the one before"
    );

    let published = publish(&app, &token, "conversion.created", json!({})).await;
    assert_eq!(published.delivery_count, 1, "{published:?}");
    let request = receiver.wait_for(1, Duration::from_secs(15)).await[0].clone();
    let signing: Vec<usize> = (0..AT_ONCE)
        .filter(|&n| verify(&chain[n].1, &request).is_ok())
        .collect();
    assert_eq!(
        signing,
        [AT_ONCE - 2, AT_ONCE - 1],
        "signed by the last secret issued and the one it replaced"
    );
    assert!(
        verify(&created.secret, &request).is_err(),
        "the first was replaced"
    );
    let signatures = request.header("webhook-signature").split(' ').count();
    assert_eq!(signatures, 2, "no other secret signs");
}

/// A payload change is checked with the settings it leaves alone as they
/// are when it is stored. A `GET` postback sends no JSON body, so switching
/// to a template and switching to `GET` exclude each other: of several of
/// each sent at once, whichever is stored first wins and every change of the
/// other kind is refused. Checked against the settings read before the
/// writing transaction, both kinds were acknowledged, and the stored
/// settings were not those some caller had been told.
#[tokio::test]
async fn payload_changes_at_once_are_each_checked_against_the_one_before() {
    let app = TestApp::spawn().await;
    let token = app.admin("acme");
    let receiver = Receiver::ok().await;
    let input = fast_webhook(&receiver.url, &["conversion.created"], 1);
    let id = create_webhook(&app, &token, input).await.webhook.id;

    let template = json!({ "payloadFormat": "TEMPLATE", "bodyTemplate": "{\"n\": 1}" });
    let get = json!({ "method": "GET" });
    let changes = (0..AT_ONCE).map(|n| {
        let input = if n % 2 == 0 { &template } else { &get };
        app.gql
            .run(Some(&token), UPDATE, json!({ "id": id, "input": input }))
    });
    let mut stored = Vec::new();
    for answer in join_all(changes).await {
        match error_code(&answer) {
            None => stored.push(answer["data"]["updateWebhook"].clone()),
            Some(code) => assert_eq!(code, "BAD_USER_INPUT", "{answer}"),
        }
    }
    let first = stored
        .first()
        .expect("one change at least is stored")
        .clone();
    assert!(
        stored.iter().all(|settings| *settings == first),
        "changes of one kind only are stored: {stored:?}"
    );
    let now = app
        .gql
        .ok(
            &token,
            "query($id: ID!) { webhook(id: $id) { payloadFormat method } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(now["webhook"], first, "stored as acknowledged");
}
