//! Checking a received delivery the way a Standard Webhooks receiver must:
//! the three `webhook-*` headers present, the timestamp within five minutes
//! of now (so a captured request cannot be replayed later), and some
//! signature matching the key: `v1,` for a `whsec_` secret, `v1a,` for a
//! `whpk_` ed25519 public key. Pure: the caller passes the clock.

use std::fmt;

use anyhow::Context;
use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::Verifier;

use crate::{
    crypto::{ED25519_PUBLIC_PREFIX, signing_key},
    delivery::signer,
};

/// What signatures are checked with.
pub enum Key {
    /// The decoded part of a `whsec_` secret: `v1` signatures.
    Hmac(Vec<u8>),
    /// A `whpk_` public key: `v1a` signatures.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl Key {
    /// A `whsec_…` secret or a `whpk_…` public key.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let Some(encoded) = text.strip_prefix(ED25519_PUBLIC_PREFIX) else {
            return signing_key(text).map(Self::Hmac);
        };
        let bytes: [u8; 32] = STANDARD
            .decode(encoded)
            .context("the public key is not base64")?
            .try_into()
            .map_err(|_| anyhow::anyhow!("the public key is not 32 bytes"))?;
        Ok(Self::Ed25519(
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).context("not an ed25519 public key")?,
        ))
    }

    /// The signature version this key checks.
    fn version(&self) -> &'static str {
        match self {
            Self::Hmac(_) => "v1",
            Self::Ed25519(_) => "v1a",
        }
    }

    fn matches(&self, id: &str, timestamp: i64, body: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Hmac(key) => signer::matches(key, id, timestamp, body, signature),
            Self::Ed25519(key) => {
                let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
                    return false;
                };
                let mut content = format!("{id}.{timestamp}.").into_bytes();
                content.extend_from_slice(body);
                key.verify(&content, &signature).is_ok()
            }
        }
    }
}

/// How far a `webhook-timestamp` may be from now, either way, as the
/// reference verifiers allow.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// The Standard Webhooks headers of one request, as received.
#[derive(Clone, Copy, Debug, Default)]
pub struct SignedHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// A verified request: how long ago it was signed, and which of the listed
/// signatures matched (1-based; several are listed during a secret rotation).
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub age_secs: i64,
    pub matched: usize,
    pub listed: usize,
}

/// Why a request is not verified.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    NoSecret,
    MissingHeader(&'static str),
    BadTimestamp(String),
    TooOld {
        age_secs: i64,
    },
    TooNew {
        ahead_secs: i64,
    },
    /// No signature of the version the key checks (`v1` or `v1a`).
    NoSignature {
        version: &'static str,
    },
    NoMatch {
        listed: usize,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSecret => write!(
                f,
                "no secret to check against (start with --secret or HOOKLINE_LISTEN_SECRET)"
            ),
            Self::MissingHeader(name) => write!(f, "no `{name}` header"),
            Self::BadTimestamp(value) => {
                write!(f, "`webhook-timestamp` {value:?} is not Unix seconds")
            }
            Self::TooOld { age_secs } => write!(
                f,
                "signed {age_secs} s ago, more than {TOLERANCE_SECS} s: a replay, or a clock that is off"
            ),
            Self::TooNew { ahead_secs } => write!(
                f,
                "signed {ahead_secs} s in the future, more than {TOLERANCE_SECS} s: a clock that is off"
            ),
            Self::NoSignature { version } => {
                write!(f, "`webhook-signature` lists no `{version},` signature")
            }
            Self::NoMatch { listed } => write!(
                f,
                "none of the {listed} signature(s) matches the secret (another webhook's secret, \
                 or a body changed on the way)"
            ),
        }
    }
}

/// Verifies `body` against `headers` with `key`, at `now_secs` (Unix
/// seconds).
pub fn verify(
    key: Option<&Key>,
    headers: SignedHeaders<'_>,
    body: &[u8],
    now_secs: i64,
) -> Result<Verified, Refusal> {
    let id = headers.id.ok_or(Refusal::MissingHeader("webhook-id"))?;
    let timestamp = headers
        .timestamp
        .ok_or(Refusal::MissingHeader("webhook-timestamp"))?;
    let listed = headers
        .signature
        .ok_or(Refusal::MissingHeader("webhook-signature"))?;
    let key = key.ok_or(Refusal::NoSecret)?;
    let signed_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Refusal::BadTimestamp(timestamp.to_owned()))?;
    let age_secs = now_secs.saturating_sub(signed_at);
    if age_secs > TOLERANCE_SECS {
        return Err(Refusal::TooOld { age_secs });
    }
    if age_secs < -TOLERANCE_SECS {
        return Err(Refusal::TooNew {
            ahead_secs: -age_secs,
        });
    }
    let candidates: Vec<&str> = listed.split_whitespace().collect();
    let version = key.version();
    let mut any_of_version = false;
    for (index, candidate) in candidates.iter().enumerate() {
        let Some(encoded) = candidate
            .strip_prefix(version)
            .and_then(|rest| rest.strip_prefix(','))
        else {
            continue;
        };
        any_of_version = true;
        let Ok(signature) = STANDARD.decode(encoded) else {
            continue;
        };
        if key.matches(id, signed_at, body, &signature) {
            return Ok(Verified {
                age_secs,
                matched: index + 1,
                listed: candidates.len(),
            });
        }
    }
    if any_of_version {
        Err(Refusal::NoMatch {
            listed: candidates.len(),
        })
    } else {
        Err(Refusal::NoSignature { version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn key() -> Key {
        Key::parse(SECRET).expect("valid secret")
    }

    fn headers(signature: &str) -> SignedHeaders<'_> {
        SignedHeaders {
            id: Some(ID),
            timestamp: Some("1649367553"),
            signature: Some(signature),
        }
    }

    #[test]
    fn the_standard_webhooks_test_vector_verifies() {
        let verified = verify(Some(&key()), headers(SIGNATURE), BODY, TIMESTAMP + 2);
        assert_eq!(
            verified,
            Ok(Verified {
                age_secs: 2,
                matched: 1,
                listed: 1
            })
        );
    }

    #[test]
    fn during_a_rotation_any_listed_signature_may_match() {
        let listed = format!("v1,AAAA v1a,ignored {SIGNATURE}");
        let verified = verify(Some(&key()), headers(&listed), BODY, TIMESTAMP).expect("verified");
        assert_eq!((verified.matched, verified.listed), (3, 3));
    }

    #[test]
    fn timestamps_more_than_five_minutes_off_are_refused_either_way() {
        let at = |now| verify(Some(&key()), headers(SIGNATURE), BODY, now);
        assert!(at(TIMESTAMP + TOLERANCE_SECS).is_ok());
        assert!(at(TIMESTAMP - TOLERANCE_SECS).is_ok());
        assert_eq!(
            at(TIMESTAMP + TOLERANCE_SECS + 1),
            Err(Refusal::TooOld { age_secs: 301 })
        );
        assert_eq!(
            at(TIMESTAMP - TOLERANCE_SECS - 1),
            Err(Refusal::TooNew { ahead_secs: 301 })
        );
    }

    #[test]
    fn a_changed_body_or_another_secret_does_not_verify() {
        assert_eq!(
            verify(Some(&key()), headers(SIGNATURE), b"{}", TIMESTAMP),
            Err(Refusal::NoMatch { listed: 1 })
        );
        assert_eq!(
            verify(
                Some(&Key::Hmac(b"other".to_vec())),
                headers(SIGNATURE),
                BODY,
                TIMESTAMP
            ),
            Err(Refusal::NoMatch { listed: 1 })
        );
    }

    #[test]
    fn missing_headers_and_unknown_versions_are_named() {
        let unsigned = SignedHeaders {
            signature: None,
            ..headers(SIGNATURE)
        };
        assert_eq!(
            verify(Some(&key()), unsigned, BODY, TIMESTAMP),
            Err(Refusal::MissingHeader("webhook-signature"))
        );
        assert_eq!(
            verify(Some(&key()), headers("v2,abc"), BODY, TIMESTAMP),
            Err(Refusal::NoSignature { version: "v1" })
        );
        let bad_time = SignedHeaders {
            timestamp: Some("yesterday"),
            ..headers(SIGNATURE)
        };
        assert!(matches!(
            verify(Some(&key()), bad_time, BODY, TIMESTAMP),
            Err(Refusal::BadTimestamp(_))
        ));
    }

    #[test]
    fn a_public_key_verifies_v1a_signatures_and_only_them() {
        let private = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let public = format!(
            "whpk_{}",
            STANDARD.encode(private.verifying_key().as_bytes())
        );
        let key = Key::parse(&public).expect("a public key");
        let signed = signer::sign_ed25519(&private, ID, TIMESTAMP, BODY);
        let listed = format!("{SIGNATURE} {signed}");
        let verified = verify(Some(&key), headers(&listed), BODY, TIMESTAMP).expect("verified");
        assert_eq!((verified.matched, verified.listed), (2, 2));
        assert_eq!(
            verify(Some(&key), headers(SIGNATURE), BODY, TIMESTAMP),
            Err(Refusal::NoSignature { version: "v1a" })
        );
        assert_eq!(
            verify(Some(&key), headers(&signed), b"{}", TIMESTAMP),
            Err(Refusal::NoMatch { listed: 1 })
        );
        assert!(Key::parse("whpk_AAAA").is_err());
    }

    #[test]
    fn without_a_secret_nothing_verifies() {
        assert_eq!(
            verify(None, headers(SIGNATURE), BODY, TIMESTAMP),
            Err(Refusal::NoSecret)
        );
    }
}
