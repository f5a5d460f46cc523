//! Standard Webhooks signatures: `v1,` + base64(HMAC-SHA256(key,
//! "{id}.{timestamp}.{body}")), where the key is the base64-decoded part of
//! the `whsec_` secret. During a rotation every valid secret signs, and the
//! header lists the signatures separated by spaces.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

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

/// The `webhook-signature` header value: one signature per key.
pub fn signature_header(keys: &[Vec<u8>], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| sign(key, msg_id, timestamp, body))
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
    fn rotation_signs_with_every_key() {
        let header = signature_header(&[b"new".to_vec(), b"old".to_vec()], "evt_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(b"new", "evt_1", 1, b"{}"));
        assert_eq!(parts[1], sign(b"old", "evt_1", 1, b"{}"));
    }
}
