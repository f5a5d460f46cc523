//! The keys every test server starts with, and the tokens tests present: from
//! hookline's own issuer, or forged byte by byte for tokens it must refuse.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use hookline::auth::{JwtKeys, Role};
use serde_json::{Value, json};

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret!";
/// base64 of 32 bytes of 0x2a.
pub const ENCRYPTION_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

pub fn keys() -> JwtKeys {
    JwtKeys::new(JWT_SECRET.as_bytes())
}

/// A token for `{role}-user` of `tenant`, valid for an hour.
pub fn token(tenant: &str, role: Role) -> String {
    keys()
        .issue(
            tenant,
            &format!("{}-user", role.as_str()),
            role,
            Duration::from_secs(3600),
        )
        .expect("token")
}

pub fn admin_token(tenant: &str) -> String {
    token(tenant, Role::Admin)
}

/// A token for `login` of `tenant` that runs out after `ttl`, with its `exp`
/// in epoch milliseconds.
pub fn expiring_token(tenant: &str, login: &str, role: Role, ttl: Duration) -> (String, i64) {
    let token = keys().issue(tenant, login, role, ttl).expect("token");
    let claims = token.split('.').nth(1).expect("three parts");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("base64")).expect("JSON");
    (token, claims["exp"].as_i64().expect("exp") * 1000)
}

/// `header` and `claims` signed with HMAC-SHA256 under `secret`, whatever
/// they say: for tokens hookline's issuer would never make.
pub fn forge(header: Value, claims: Value, secret: &[u8]) -> String {
    let head = URL_SAFE_NO_PAD.encode(header.to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("hmac key");
    mac.update(format!("{head}.{body}").as_bytes());
    format!(
        "{head}.{body}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// `claims` as a well-formed HS256 token signed with the test secret.
pub fn sign_hs256(claims: &Value) -> String {
    forge(
        json!({ "alg": "HS256", "typ": "JWT" }),
        claims.clone(),
        JWT_SECRET.as_bytes(),
    )
}
