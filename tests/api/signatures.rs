//! Asymmetric signatures (Standard Webhooks `v1a`): an ed25519 webhook signs
//! with a private key only hookline holds and shows its `whpk_` public key;
//! receivers verify with an independent ed25519 implementation; rotation
//! overlaps as for HMAC secrets, and a webhook can move between schemes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    TestApp,
    fixtures::*,
    receiver::Receiver,
    verify::{verify, verify_ed25519},
};

const GRACE: Duration = Duration::from_secs(2);

async fn rotate(app: &TestApp, token: &str, id: &str, scheme: Option<&str>) -> Value {
    let doc = "mutation($id: ID!, $scheme: SignatureScheme) {
        rotateWebhookSecret(id: $id, signatureScheme: $scheme) {
            secret webhook { signatureScheme publicKey } } }";
    app.gql
        .field(token, doc, json!({ "id": id, "scheme": scheme }))
        .await
}

async fn scheme_of(app: &TestApp, token: &str, id: &str) -> Value {
    app.gql
        .field(
            token,
            "query($id: ID!) { webhook(id: $id) { signatureScheme publicKey } }",
            json!({ "id": id }),
        )
        .await
}

/// Publishes one event and returns the request that brought it.
async fn deliver_one(
    app: &TestApp,
    token: &str,
    receiver: &Receiver,
) -> crate::support::receiver::Received {
    let before = receiver.count();
    publish(app, token, "conversion.created", json!({ "amount": 3 })).await;
    receiver.wait_for(before + 1, WAIT).await[before].clone()
}

fn signatures(request: &crate::support::receiver::Received) -> Vec<String> {
    request
        .header("webhook-signature")
        .split(' ')
        .map(|s| s.split(',').next().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn an_ed25519_webhook_signs_v1a_and_receivers_verify_with_its_public_key() {
    let app = TestApp::spawn_with(|config| config.secret_rotation_grace = GRACE).await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    let mut input = fast_webhook(&receiver.url, &["conversion.created"], 1);
    input["signatureScheme"] = json!("ED25519");
    let created = create_webhook(&app, &admin, input).await;
    assert!(created.secret.starts_with("whpk_"), "{}", created.secret);
    let id = created.webhook.id.clone();
    let shown = scheme_of(&app, &admin, &id).await;
    assert_eq!(shown["signatureScheme"], "ED25519");
    assert_eq!(shown["publicKey"], created.secret.as_str());

    let first = deliver_one(&app, &admin, &receiver).await;
    assert_eq!(signatures(&first), ["v1a"]);
    verify_ed25519(&created.secret, &first).expect("verifies with the public key");
    // Another key does not verify it.
    let other = rotate(&app, &admin, &id, None).await;
    let new_key = other["secret"].as_str().expect("key").to_owned();
    assert_ne!(new_key, created.secret);
    assert!(verify_ed25519(&new_key, &first).is_err());

    // During the grace period both keys sign; after it, only the new one.
    let overlap = deliver_one(&app, &admin, &receiver).await;
    assert_eq!(signatures(&overlap), ["v1a", "v1a"]);
    verify_ed25519(&new_key, &overlap).expect("the new key");
    verify_ed25519(&created.secret, &overlap).expect("the old key, during the grace period");
    tokio::time::sleep(GRACE + Duration::from_millis(200)).await;
    let after = deliver_one(&app, &admin, &receiver).await;
    assert_eq!(signatures(&after), ["v1a"]);
    verify_ed25519(&new_key, &after).expect("the new key");
    assert!(
        verify_ed25519(&created.secret, &after).is_err(),
        "the old key no longer signs"
    );
}

#[tokio::test]
async fn a_webhook_moves_between_hmac_and_ed25519_with_an_overlap() {
    let app = TestApp::spawn_with(|config| config.secret_rotation_grace = GRACE).await;
    let admin = app.admin("acme");
    let receiver = Receiver::ok().await;
    let created = create_webhook(
        &app,
        &admin,
        fast_webhook(&receiver.url, &["conversion.created"], 1),
    )
    .await;
    assert!(created.secret.starts_with("whsec_"));
    let id = created.webhook.id.clone();
    assert_eq!(scheme_of(&app, &admin, &id).await["publicKey"], Value::Null);

    let moved = rotate(&app, &admin, &id, Some("ED25519")).await;
    let public_key = moved["secret"].as_str().expect("key").to_owned();
    assert_eq!(moved["webhook"]["signatureScheme"], "ED25519");
    assert_eq!(moved["webhook"]["publicKey"], public_key.as_str());
    let overlap = deliver_one(&app, &admin, &receiver).await;
    assert_eq!(signatures(&overlap), ["v1a", "v1"]);
    verify_ed25519(&public_key, &overlap).expect("the new ed25519 key");
    verify(&created.secret, &overlap).expect("the old HMAC secret, during the grace period");

    let back = rotate(&app, &admin, &id, Some("HMAC_SHA256")).await;
    let secret = back["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(back["webhook"]["publicKey"], Value::Null);
    tokio::time::sleep(GRACE + Duration::from_millis(200)).await;
    let last = deliver_one(&app, &admin, &receiver).await;
    assert_eq!(signatures(&last), ["v1"]);
    verify(&secret, &last).expect("the new HMAC secret");
}
