//! Standard Webhooks signatures of "{id}.{timestamp}.{body}": `v1,` +
//! base64(HMAC-SHA256) under the base64-decoded part of a `whsec_` secret,
//! or `v1a,` + base64(ed25519 signature) under a `whsk_` private key.
//! During a rotation every valid secret signs, and the header lists the
//! signatures separated by spaces.

use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::Signer;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::crypto::SigningKey;

pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = signed_content(key, msg_id, timestamp, body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Whether `signature` (the decoded bytes of one `v1,` signature) is the
/// signature of this message under `key`. Compared in constant time, so a
/// receiver using it does not leak how much of a forged signature was right.
pub fn matches(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8], signature: &[u8]) -> bool {
    signed_content(key, msg_id, timestamp, body)
        .verify_slice(signature)
        .is_ok()
}

fn signed_content(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `v1a,` + base64 of the ed25519 signature of the message under `key`.
pub fn sign_ed25519(
    key: &ed25519_dalek::SigningKey,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut content = Vec::with_capacity(msg_id.len() + body.len() + 24);
    content.extend_from_slice(msg_id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.to_string().as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    format!("v1a,{}", STANDARD.encode(key.sign(&content).to_bytes()))
}

/// The `webhook-signature` header value: one signature per key.
pub fn signature_header(keys: &[SigningKey], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| match key {
            SigningKey::Hmac(key) => sign(key, msg_id, timestamp, body),
            SigningKey::Ed25519(key) => sign_ed25519(key, msg_id, timestamp, body),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::signing_key;

    /// The test vector published with the Standard Webhooks specification.
    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let key = signing_key("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("valid secret");
        let signature = sign(
            &key,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn a_signature_matches_only_its_own_message_and_key() {
        let key = signing_key("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("valid secret");
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let signature = STANDARD
            .decode("tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")
            .expect("base64");
        let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
        assert!(matches(&key, id, 1_649_367_553, body, &signature));
        assert!(!matches(&key, id, 1_649_367_554, body, &signature));
        assert!(!matches(&key, "msg_other", 1_649_367_553, body, &signature));
        assert!(!matches(&key, id, 1_649_367_553, b"{}", &signature));
        assert!(!matches(
            b"another key",
            id,
            1_649_367_553,
            body,
            &signature
        ));
    }

    #[test]
    fn an_ed25519_signature_verifies_with_the_public_key_only() {
        use ed25519_dalek::Verifier;
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let header = sign_ed25519(&key, "evt_1", 1_700_000_000, b"{}");
        let bytes = STANDARD
            .decode(header.strip_prefix("v1a,").expect("v1a"))
            .expect("base64");
        let signature = ed25519_dalek::Signature::from_slice(&bytes).expect("64 bytes");
        let public = key.verifying_key();
        assert!(public.verify(b"evt_1.1700000000.{}", &signature).is_ok());
        assert!(public.verify(b"evt_1.1700000001.{}", &signature).is_err());
        let other = ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(other.verify(b"evt_1.1700000000.{}", &signature).is_err());
    }

    #[test]
    fn rotation_signs_with_every_key() {
        let keys = [
            SigningKey::Hmac(b"new".to_vec()),
            SigningKey::Hmac(b"old".to_vec()),
        ];
        let header = signature_header(&keys, "evt_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(b"new", "evt_1", 1, b"{}"));
        assert_eq!(parts[1], sign(b"old", "evt_1", 1, b"{}"));
    }
}
