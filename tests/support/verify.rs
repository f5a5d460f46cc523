//! A Standard Webhooks verifier written from the specification
//! (https://www.standardwebhooks.com), independent of hookline's signer.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::receiver::Received;

/// Checks `webhook-signature` against `secret` (`whsec_…`): some `v1,`
/// signature must be the HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`
/// keyed by the base64-decoded secret, and the timestamp within five minutes.
pub fn verify(secret: &str, request: &Received) -> Result<(), String> {
    verify_content(secret, request, &request.body)
}

/// [`verify`] over `content` in place of the body: what hookline signs for
/// a `GET` postback is its request target (path and query).
pub fn verify_content(secret: &str, request: &Received, content: &[u8]) -> Result<(), String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or("secret lacks whsec_")?)
        .map_err(|e| format!("secret is not base64: {e}"))?;
    let id = request.header("webhook-id");
    let timestamp = request.header("webhook-timestamp");
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| format!("bad timestamp {timestamp:?}"))?;
    let now = chrono::Utc::now().timestamp();
    if (now - ts).abs() > 300 {
        return Err(format!("timestamp {ts} is more than 5 minutes from {now}"));
    }
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(content);
    for candidate in request.header("webhook-signature").split(' ') {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        let Ok(signature) = STANDARD.decode(encoded) else {
            continue;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
        mac.update(&signed);
        if mac.verify_slice(&signature).is_ok() {
            return Ok(());
        }
    }
    Err("no signature matches".into())
}

/// Checks `webhook-signature` against `public_key` (`whpk_…`): some `v1a,`
/// signature must be the ed25519 signature of `{webhook-id}.{webhook-timestamp}.{body}`,
/// verified by aws-lc-rs, an implementation independent of hookline's
/// signer (ed25519-dalek).
pub fn verify_ed25519(public_key: &str, request: &Received) -> Result<(), String> {
    use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
    let key = STANDARD
        .decode(
            public_key
                .strip_prefix("whpk_")
                .ok_or("public key lacks whpk_")?,
        )
        .map_err(|e| format!("public key is not base64: {e}"))?;
    let mut signed = format!(
        "{}.{}.",
        request.header("webhook-id"),
        request.header("webhook-timestamp")
    )
    .into_bytes();
    signed.extend_from_slice(&request.body);
    let key = UnparsedPublicKey::new(&ED25519, key);
    for candidate in request.header("webhook-signature").split(' ') {
        let Some(Ok(signature)) = candidate.strip_prefix("v1a,").map(|s| STANDARD.decode(s)) else {
            continue;
        };
        if key.verify(&signed, &signature).is_ok() {
            return Ok(());
        }
    }
    Err("no v1a signature matches".into())
}
