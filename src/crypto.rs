//! Webhook signing secrets: generating them, and encrypting them at rest.

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, AeadCore, KeyInit, OsRng},
};
use rand::RngCore;

/// Prefix of every signing secret, as in Standard Webhooks.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new `whsec_…` secret: 24 random bytes, base64.
pub fn generate_signing_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
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
