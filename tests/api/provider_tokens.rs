//! Tokens from the network's identity provider: keys the test generates
//! (RS256, ES256, EdDSA) and serves as a JWKS on 127.0.0.1, tokens it signs
//! with aws-lc-rs (not with the library hookline verifies with), the
//! provider's own claim names, a rotation to a new `kid`, and refusals for
//! a wrong audience, a wrong issuer, an expired token and an unknown key,
//! and for a token already verified whose key the provider then removed;
//! while the provider is down, the set held keeps verifying.
//! Also CORS: the listed origin's preflight is answered, others are not.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use aws_lc_rs::{
    rand::SystemRandom,
    rsa::{KeyPair as RsaKeyPair, KeySize},
    signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    },
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};

use crate::support::{TestApp, ws::WsClient};

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A key the provider signs with, under its `kid`.
struct ProviderKey {
    kid: String,
    signer: Signer,
}

impl ProviderKey {
    fn new(kid: &str, alg: &str) -> Self {
        let signer = match alg {
            "RS256" => Signer::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa")),
            "ES256" => {
                Signer::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("p-256"))
            }
            _ => Signer::Ed(Ed25519KeyPair::generate().expect("ed25519")),
        };
        Self {
            kid: kid.into(),
            signer,
        }
    }

    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
            Signer::Ed(_) => "EdDSA",
        }
    }

    fn jwk(&self) -> Value {
        let kid = &self.kid;
        match &self.signer {
            Signer::Rsa(key) => {
                let public = key.public_key();
                json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                    "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
                    "e": B64.encode(public.exponent().big_endian_without_leading_zero()) })
            }
            Signer::Ec(key) => {
                let point = key.public_key().as_ref();
                json!({ "kty": "EC", "kid": kid, "crv": "P-256",
                    "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..65]) })
            }
            Signer::Ed(key) => json!({ "kty": "OKP", "kid": kid, "crv": "Ed25519",
                "x": B64.encode(key.public_key().as_ref()) }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": self.alg(), "kid": self.kid, "typ": "JWT" });
        let content = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let signature = match &self.signer {
            Signer::Rsa(key) => {
                let mut out = vec![0; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, content.as_bytes(), &mut out)
                    .expect("rsa signature");
                out
            }
            Signer::Ec(key) => key
                .sign(&rng, content.as_bytes())
                .expect("ecdsa")
                .as_ref()
                .to_vec(),
            Signer::Ed(key) => key.sign(content.as_bytes()).as_ref().to_vec(),
        };
        format!("{content}.{}", B64.encode(signature))
    }
}

/// The provider's JWKS endpoint as the test drives it.
struct Served {
    body: Mutex<String>,
    /// Answers 500 instead of the set: the provider is down.
    down: AtomicBool,
    /// Waits 4 s before answering: the provider is slow.
    slow: AtomicBool,
    /// How many times hookline asked for the set.
    asked: AtomicUsize,
}

impl Served {
    fn serve(&self, keys: &[&ProviderKey]) {
        *self.body.lock().expect("jwks") = set_of(keys);
    }

    fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

/// Serves a JWKS at `http://127.0.0.1:PORT/jwks.json` that the test replaces.
async fn serve_jwks(keys: &[&ProviderKey]) -> (String, Arc<Served>) {
    let state = Arc::new(Served {
        body: Mutex::new(set_of(keys)),
        down: AtomicBool::new(false),
        slow: AtomicBool::new(false),
        asked: AtomicUsize::new(0),
    });
    let served = state.clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let served = served.clone();
            async move {
                served.asked.fetch_add(1, Ordering::SeqCst);
                if served.slow.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                }
                if served.down.load(Ordering::SeqCst) {
                    Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                } else {
                    Ok(served.body.lock().expect("jwks").clone())
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/jwks.json"), state)
}

fn set_of(keys: &[&ProviderKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }).to_string()
}

fn claims(overrides: Value) -> Value {
    let mut claims = json!({
        "iss": "https://idp.network.example",
        "aud": "hookline",
        "email": "aff-7@partners.example",
        "org": "acme",
        "roles": ["reporting", "partner"],
        "exp": chrono::Utc::now().timestamp() + 600,
    });
    for (key, value) in overrides.as_object().expect("object") {
        claims[key] = value.clone();
    }
    claims
}

async fn viewer(app: &TestApp, token: &str) -> Result<Value, (String, String)> {
    let body = app
        .gql
        .run(Some(token), "{ viewer { tenant login role } }", json!({}))
        .await;
    match body["errors"].get(0) {
        None => Ok(body["data"]["viewer"].clone()),
        Some(error) => Err((
            error["extensions"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            error["message"].as_str().unwrap_or_default().to_owned(),
        )),
    }
}

#[tokio::test]
async fn provider_tokens_are_checked_against_its_jwks() {
    let (ed, ec, rsa) = (
        ProviderKey::new("ed-1", "EdDSA"),
        ProviderKey::new("ec-1", "ES256"),
        ProviderKey::new("rsa-1", "RS256"),
    );
    let (jwks_url, jwks) = serve_jwks(&[&ed, &ec, &rsa]).await;
    let app = TestApp::spawn_with(|config| {
        let access = &mut config.access;
        access.jwks_url = Some(jwks_url);
        access.jwt_issuer = Some("https://idp.network.example".into());
        access.jwt_audience = Some("hookline".into());
        access.jwt_tenant_claim = "org".into();
        access.jwt_role_claim = "roles".into();
        access.jwt_login_claim = "email".into();
        access.jwks_min_refresh = Duration::from_millis(200);
        access.cors_origins = vec!["https://app.network.example".into()];
    })
    .await;

    let expected =
        json!({ "tenant": "acme", "login": "aff-7@partners.example", "role": "PARTNER" });
    for key in [&ed, &ec, &rsa] {
        let token = key.sign(&claims(json!({})));
        assert_eq!(
            viewer(&app, &token).await,
            Ok(expected.clone()),
            "{}",
            key.alg()
        );
    }
    // The provider's claims decide the role: the most powerful one named.
    let admin = ed.sign(&claims(json!({ "roles": ["viewer", "admin"] })));
    assert_eq!(viewer(&app, &admin).await.expect("valid")["role"], "ADMIN");

    let refused = [
        (
            ed.sign(&claims(json!({ "aud": "another-service" }))),
            "audience",
        ),
        (
            ed.sign(&claims(json!({ "iss": "https://evil.example" }))),
            "issuer",
        ),
        (
            ed.sign(&claims(
                json!({ "exp": chrono::Utc::now().timestamp() - 5 }),
            )),
            "expired",
        ),
        (ed.sign(&claims(json!({ "roles": ["reporting"] }))), "role"),
        (
            ed.sign(&claims(json!({ "org": "acme tenant with spaces" }))),
            "tenant",
        ),
        (
            ProviderKey::new("ed-1", "EdDSA").sign(&claims(json!({}))),
            "signature",
        ),
        (
            ProviderKey::new("unknown", "EdDSA").sign(&claims(json!({}))),
            "not in the JWKS",
        ),
    ];
    for (token, why) in &refused {
        let (code, message) = viewer(&app, token).await.expect_err(why);
        assert_eq!(code, "UNAUTHENTICATED", "{why}: {message}");
        assert!(message.contains(why), "{why}: {message}");
    }

    // The provider rotates to a new key: a token naming it is accepted once
    // hookline reads the set again, and the retired key's tokens no longer
    // verify when hookline has not seen them before.
    let next = ProviderKey::new("ed-2", "EdDSA");
    jwks.serve(&[&next]);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let rotated = next.sign(&claims(json!({})));
    assert_eq!(viewer(&app, &rotated).await, Ok(expected.clone()));
    let retired = ed.sign(&claims(json!({ "email": "someone-else@partners.example" })));
    let (code, message) = viewer(&app, &retired).await.expect_err("retired key");
    assert_eq!(code, "UNAUTHENTICATED", "{message}");

    // Over WebSocket, the same token opens a session.
    let mut socket = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
    socket
        .init(json!({ "Authorization": format!("Bearer {rotated}") }))
        .await
        .expect("ack");
    socket.close().await;

    // CORS: the listed origin may call with a token; another may not.
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.network.example")
        .await
        .expect("preflight");
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.network.example"
    );
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .expect("text");
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    let other = preflight("https://evil.example").await.expect("preflight");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}

/// The provider revokes a key by taking it out of its JWKS. A token that key
/// signed, which hookline verified and kept before, is refused once the set
/// is read again (after `HOOKLINE_JWKS_MAX_AGE`), as a fresh one would be;
/// a kept token whose key stayed in the set is still let in.
#[tokio::test]
async fn a_kept_token_is_refused_once_its_key_leaves_the_jwks() {
    let (leaving, staying) = (
        ProviderKey::new("ed-leaving", "EdDSA"),
        ProviderKey::new("ed-staying", "EdDSA"),
    );
    let (jwks_url, jwks) = serve_jwks(&[&leaving, &staying]).await;
    let app = spawn_reading(jwks_url, 300, 100).await;
    let revoked = leaving.sign(&claims(json!({})));
    let kept = staying.sign(&claims(json!({})));
    for token in [&revoked, &kept] {
        viewer(&app, token).await.expect("verified");
        viewer(&app, token)
            .await
            .expect("answered from what was kept");
    }

    jwks.serve(&[&staying]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (code, message) = viewer(&app, &revoked)
        .await
        .expect_err("its key left the set");
    assert_eq!(code, "UNAUTHENTICATED", "{message}");
    assert!(message.contains("not in the JWKS"), "{message}");
    viewer(&app, &kept)
        .await
        .expect("its key is still in the set");
    app.stop().await;
}

/// A WebSocket opened with a provider's token ends once the token's key
/// leaves the JWKS (checked every half `HOOKLINE_JWKS_MAX_AGE`): its
/// subscription gets `UNAUTHENTICATED` and its `complete`, and the socket
/// closes with 4403, while a socket whose key stayed goes on. Shown failing
/// before: the socket went on streaming until the token's `exp`.
#[tokio::test]
async fn a_socket_ends_once_its_tokens_key_leaves_the_jwks() {
    let (leaving, staying) = (
        ProviderKey::new("ed-leaving", "EdDSA"),
        ProviderKey::new("ed-staying", "EdDSA"),
    );
    let (jwks_url, jwks) = serve_jwks(&[&leaving, &staying]).await;
    let app = spawn_reading(jwks_url, 300, 100).await;
    let mut sockets = Vec::new();
    for key in [&leaving, &staying] {
        let token = key.sign(&claims(json!({ "roles": ["admin"] })));
        let mut socket = WsClient::connect(app.addr, "graphql-transport-ws", None).await;
        socket
            .init(json!({ "Authorization": format!("Bearer {token}") }))
            .await
            .expect("ack");
        socket
            .subscribe(
                "live",
                "subscription { deliveryAttempts { id } }",
                json!({}),
            )
            .await;
        sockets.push(socket);
    }
    let mut kept = sockets.pop().expect("the staying key's socket");
    let mut revoked = sockets.pop().expect("the leaving key's socket");
    // Both sockets outlive several re-checks while the keys are in the set.
    revoked.expect_silence(Duration::from_millis(800)).await;

    jwks.serve(&[&staying]);
    let (messages, code, reason) = revoked.until_closed(Duration::from_secs(5)).await;
    assert_eq!(code, 4403, "{reason}");
    assert!(reason.contains("not in the JWKS"), "{reason}");
    let error = &messages[0];
    assert_eq!(error["id"], "live", "{messages:?}");
    assert_eq!(
        error["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{messages:?}"
    );
    assert_eq!(messages[1]["type"], "complete", "{messages:?}");
    kept.expect_silence(Duration::from_millis(800)).await;
    kept.send(json!({ "id": "q", "type": "subscribe",
                      "payload": { "query": "{ viewer { tenant } }" } }))
        .await;
    let answer = kept.recv(Duration::from_secs(5)).await.expect("an answer");
    assert_eq!(
        answer["payload"]["data"]["viewer"]["tenant"], "acme",
        "{answer}"
    );
    app.stop().await;
}

/// An app taking the provider's tokens from `jwks_url`, read again after
/// `max_age_ms`, at most every `min_refresh_ms`.
async fn spawn_reading(jwks_url: String, max_age_ms: u64, min_refresh_ms: u64) -> TestApp {
    TestApp::spawn_with(|config| {
        let access = &mut config.access;
        access.jwks_url = Some(jwks_url);
        access.jwt_tenant_claim = "org".into();
        access.jwt_role_claim = "roles".into();
        access.jwt_login_claim = "email".into();
        access.jwks_max_age = Duration::from_millis(max_age_ms);
        access.jwks_min_refresh = Duration::from_millis(min_refresh_ms);
    })
    .await
}

/// Stale if error: while the provider's JWKS cannot be read, the set held
/// keeps verifying, a token seen before and one not seen before alike, and
/// is tried again at most every `HOOKLINE_JWKS_MIN_REFRESH`, not on every
/// request. Once the provider answers again, the key it removed meanwhile
/// is learned and its token refused.
#[tokio::test]
async fn the_jwks_held_keeps_verifying_while_the_provider_is_down() {
    let (first, second) = (
        ProviderKey::new("ed-first", "EdDSA"),
        ProviderKey::new("ed-second", "EdDSA"),
    );
    let (jwks_url, jwks) = serve_jwks(&[&first, &second]).await;
    // Wide enough for a slow machine to make four requests within
    // `MIN_REFRESH` of the failed try.
    const MAX_AGE: u64 = 1_500;
    const MIN_REFRESH: u64 = 1_000;
    let app = spawn_reading(jwks_url, MAX_AGE, MIN_REFRESH).await;
    let seen = first.sign(&claims(json!({})));
    viewer(&app, &seen).await.expect("verified");
    assert_eq!(jwks.asked(), 1);

    jwks.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(MAX_AGE + 100)).await;
    viewer(&app, &seen)
        .await
        .expect("the set held still verifies");
    assert_eq!(jwks.asked(), 2, "the set was due: tried once, failed");
    let unseen = second.sign(&claims(json!({})));
    viewer(&app, &unseen).await.expect("a key of the set held");
    viewer(&app, &seen).await.expect("answered from memory");
    let stranger = ProviderKey::new("ed-stranger", "EdDSA").sign(&claims(json!({})));
    let (code, message) = viewer(&app, &stranger).await.expect_err("unknown key");
    assert_eq!(code, "UNAUTHENTICATED", "{message}");
    assert!(message.contains("not in the JWKS"), "{message}");
    assert_eq!(jwks.asked(), 2, "not tried again before min_refresh");
    tokio::time::sleep(Duration::from_millis(MIN_REFRESH + 100)).await;
    viewer(&app, &seen).await.expect("still down, still held");
    assert_eq!(jwks.asked(), 3, "tried again once min_refresh passed");

    // Back, without the first key: learned at the next read.
    jwks.serve(&[&second]);
    jwks.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(MIN_REFRESH + 150)).await;
    let (code, message) = viewer(&app, &seen).await.expect_err("its key left");
    assert_eq!(code, "UNAUTHENTICATED", "{message}");
    assert!(message.contains("not in the JWKS"), "{message}");
    viewer(&app, &unseen).await.expect("its key stayed");
    assert_eq!(jwks.asked(), 4);
    app.stop().await;
}

/// While one request reads the set again from a slow provider, the others
/// were queued behind it (up to the fetch's 5 s timeout); a key of the set
/// held now answers them meanwhile.
#[tokio::test]
async fn requests_are_not_held_up_while_a_slow_provider_is_read_again() {
    let key = ProviderKey::new("ed-slow", "EdDSA");
    let (jwks_url, jwks) = serve_jwks(&[&key]).await;
    let app = Arc::new(spawn_reading(jwks_url, 300, 100).await);
    let token = key.sign(&claims(json!({})));
    viewer(&app, &token).await.expect("verified");

    jwks.slow.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let reading = tokio::spawn({
        let (app, token) = (app.clone(), token.clone());
        async move { viewer(&app, &token).await }
    });
    // The first request is now waiting for the slow provider.
    crate::support::eventually(
        "the set to be asked for again",
        Duration::from_secs(5),
        || async { (jwks.asked() == 2).then_some(()) },
    )
    .await;
    let started = std::time::Instant::now();
    viewer(&app, &token)
        .await
        .expect("answered from the set held");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "waited {took:?} behind the read"
    );
    reading.await.expect("joined").expect("verified once read");
}
