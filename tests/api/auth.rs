//! Tokens and roles: who may call what.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hookline::auth::{JwtKeys, Role};
use serde_json::json;

use crate::support::{TestApp, fixtures::*, jwt::sign_hs256};

const VIEWER: &str = "{ viewer { tenant login role } }";

#[tokio::test]
async fn viewer_describes_the_token() {
    let app = TestApp::spawn().await;
    let data = app
        .gql
        .ok(&app.token("acme", Role::Publisher), VIEWER, json!({}))
        .await;
    assert_eq!(
        data["viewer"],
        json!({ "tenant": "acme", "login": "publisher-user", "role": "PUBLISHER" })
    );
}

#[tokio::test]
async fn missing_forged_expired_and_unsigned_tokens_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let forged = JwtKeys::new(b"someone-elses-secret-someone-else")
        .issue(
            "acme",
            "mallory",
            Role::Admin,
            std::time::Duration::from_secs(60),
        )
        .expect("token");
    let expired = {
        let claims = json!({ "sub": "a", "tenant": "acme", "role": "admin", "exp": 1_000_000 });
        sign_hs256(&claims)
    };
    let unsigned = {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            json!({ "sub": "a", "tenant": "acme", "role": "admin", "exp": 4_000_000_000u64 })
                .to_string(),
        );
        format!("{header}.{claims}.")
    };
    let bad_tenant = sign_hs256(&json!({
        "sub": "a", "tenant": "acme; drop", "role": "admin", "exp": 4_000_000_000u64
    }));
    let no_role = sign_hs256(&json!({ "sub": "a", "tenant": "acme", "exp": 4_000_000_000u64 }));

    let anonymous = app.gql.err(None, VIEWER, json!({})).await;
    assert_eq!(anonymous.code(), "UNAUTHENTICATED");
    for (name, token, reason) in [
        ("forged", forged.as_str(), "signature"),
        ("expired", expired.as_str(), "expired"),
        ("alg none", unsigned.as_str(), "algorithm"),
        ("bad tenant", bad_tenant.as_str(), "tenant"),
        ("no role", no_role.as_str(), "malformed"),
        ("garbage", "not-a-jwt", "malformed"),
    ] {
        let err = app.gql.err(Some(token), VIEWER, json!({})).await;
        assert_eq!(err.code(), "UNAUTHENTICATED", "{name}: {err}");
        assert!(err.message.contains(reason), "{name}: {err}");
    }
}

#[tokio::test]
async fn tokens_are_refused_from_the_second_they_expire() {
    let app = TestApp::spawn().await;
    let now = chrono::Utc::now().timestamp();
    // `exp` is the first instant the token no longer counts, and there is no
    // grace period after it.
    for exp in [now, now - 2] {
        let token =
            sign_hs256(&json!({ "sub": "a", "tenant": "acme", "role": "admin", "exp": exp }));
        let err = app.gql.err(Some(&token), VIEWER, json!({})).await;
        assert_eq!(
            err.code(),
            "UNAUTHENTICATED",
            "exp {} s ago: {err}",
            now - exp
        );
        assert!(err.message.contains("expired"), "{err}");
    }
}

#[tokio::test]
async fn only_admins_manage_webhooks_and_event_types() {
    let app = TestApp::spawn().await;
    let input = webhook_input("http://127.0.0.1:9/hook");
    for role in [Role::Viewer, Role::Publisher] {
        let token = app.token("acme", role);
        let err = app
            .gql
            .err(
                Some(&token),
                &create_webhook_doc(),
                json!({ "input": input }),
            )
            .await;
        assert_eq!(err.code(), "FORBIDDEN", "{role:?}");
        let err = app
            .gql
            .err(
                Some(&token),
                "mutation { createEventType(input: {name: \"invoice.paid\", description: \"x\"}) { name } }",
                json!({}),
            )
            .await;
        assert_eq!(err.code(), "FORBIDDEN", "{role:?}");
    }
    let created = create_webhook(&app, &app.admin("acme"), input).await;
    let id = created.webhook.id.as_str();

    // Every role reads.
    for role in [Role::Viewer, Role::Publisher, Role::Admin] {
        let data = app
            .gql
            .ok(
                &app.token("acme", role),
                "query($id: ID!) { webhook(id: $id) { id } webhooks { edges { node { id } } } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(data["webhook"]["id"], id);
    }
    // Only admins change.
    let viewer = app.token("acme", Role::Viewer);
    for doc in [
        "mutation($id: ID!) { deleteWebhook(id: $id) { deletedId } }",
        "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
        "mutation($id: ID!) { updateWebhook(id: $id, input: {name: \"n\"}) { id } }",
    ] {
        let err = app.gql.err(Some(&viewer), doc, json!({ "id": id })).await;
        assert_eq!(err.code(), "FORBIDDEN", "{doc}");
    }
}
