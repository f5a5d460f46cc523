//! Webhook signing secrets: generating them, reading the key they hold, and
//! encrypting them at rest.
//!
//! Two schemes, as in Standard Webhooks, told apart by the secret's prefix:
//! `whsec_` (a shared HMAC-SHA256 key, signatures `v1,`) and `whsk_` (an
//! ed25519 private key, signatures `v1a,`, verified with its `whpk_` public
//! key, which receivers may publish and need not keep secret).

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, AeadCore, KeyInit, OsRng},
};
use rand::RngCore;

/// Prefix of every signing secret, as in Standard Webhooks.
pub const SECRET_PREFIX: &str = "whsec_";

/// Prefix of an ed25519 private key (`v1a` signatures).
pub const ED25519_SECRET_PREFIX: &str = "whsk_";
/// Prefix of an ed25519 public key.
pub const ED25519_PUBLIC_PREFIX: &str = "whpk_";

/// How a webhook's deliveries are signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureScheme {
    /// `v1`: HMAC-SHA256 with a shared `whsec_` secret.
    HmacSha256,
    /// `v1a`: ed25519 with a private key only hookline holds.
    Ed25519,
}

/// A new `whsec_…` secret: 24 random bytes, base64.
pub fn generate_signing_secret() -> String {
    generate_secret(SignatureScheme::HmacSha256)
}

/// A new secret of `scheme`: `whsec_` and 24 random bytes, or `whsk_` and
/// a 32-byte ed25519 seed, base64.
pub fn generate_secret(scheme: SignatureScheme) -> String {
    let (prefix, mut bytes) = match scheme {
        SignatureScheme::HmacSha256 => (SECRET_PREFIX, vec![0u8; 24]),
        SignatureScheme::Ed25519 => (ED25519_SECRET_PREFIX, vec![0u8; 32]),
    };
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", STANDARD.encode(bytes))
}

/// What a secret signs with.
pub enum SigningKey {
    Hmac(Vec<u8>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl SigningKey {
    /// The key of a `whsec_…` or `whsk_…` secret.
    pub fn of(secret: &str) -> anyhow::Result<Self> {
        if let Some(encoded) = secret.strip_prefix(ED25519_SECRET_PREFIX) {
            let seed: [u8; 32] = STANDARD
                .decode(encoded)
                .context("ed25519 key is not base64")?
                .try_into()
                .map_err(|_| anyhow::anyhow!("ed25519 key is not 32 bytes"))?;
            return Ok(Self::Ed25519(Box::new(
                ed25519_dalek::SigningKey::from_bytes(&seed),
            )));
        }
        signing_key(secret).map(Self::Hmac)
    }
}

/// The `whpk_…` public key of a `whsk_…` secret; `None` for a `whsec_` one.
pub fn public_key(secret: &str) -> anyhow::Result<Option<String>> {
    Ok(match SigningKey::of(secret)? {
        SigningKey::Hmac(_) => None,
        SigningKey::Ed25519(key) => Some(format!(
            "{ED25519_PUBLIC_PREFIX}{}",
            STANDARD.encode(key.verifying_key().as_bytes())
        )),
    })
}

/// The HMAC key of a `whsec_…` secret: the base64-decoded part after the prefix.
pub fn signing_key(secret: &str) -> anyhow::Result<Vec<u8>> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .context("signing secret lacks the whsec_ prefix")?;
    STANDARD
        .decode(encoded)
        .context("signing secret is not base64")
}

/// Encrypts secrets for storage with XChaCha20-Poly1305 under the operator's
/// key, so that a database dump alone does not reveal them.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

/// Version tag of the stored format, so the scheme can change later.
const STORED_PREFIX: &str = "v1:";

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        format!("{STORED_PREFIX}{}", STANDARD.encode(blob))
    }

    pub fn open(&self, stored: &str) -> anyhow::Result<String> {
        let Some(encoded) = stored.strip_prefix(STORED_PREFIX) else {
            bail!("stored secret has an unknown format");
        };
        let blob = STANDARD
            .decode(encoded)
            .context("stored secret is not base64")?;
        if blob.len() < 24 {
            bail!("stored secret is truncated");
        }
        let (nonce, ciphertext) = blob.split_at(24);
        let plaintext = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| {
                anyhow::anyhow!("stored secret does not decrypt with HOOKLINE_ENCRYPTION_KEY")
            })?;
        String::from_utf8(plaintext).context("stored secret is not UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_and_do_not_contain_the_plaintext() {
        let sealed_box = SecretBox::new(&[9u8; 32]);
        let secret = generate_signing_secret();
        let stored = sealed_box.seal(&secret);
        assert!(!stored.contains(&secret[SECRET_PREFIX.len()..]));
        assert_eq!(sealed_box.open(&stored).expect("opens"), secret);
    }

    #[test]
    fn a_different_key_cannot_open() {
        let stored = SecretBox::new(&[1u8; 32]).seal("whsec_abc");
        assert!(SecretBox::new(&[2u8; 32]).open(&stored).is_err());
    }

    #[test]
    fn generated_secrets_decode_to_24_bytes() {
        let secret = generate_signing_secret();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(signing_key(&secret).expect("decodes").len(), 24);
    }
}
