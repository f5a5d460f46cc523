//! Tokens from the network's identity provider: RS256, ES256 and EdDSA
//! signatures checked against a JSON Web Key Set, read from a file or
//! fetched over HTTP(S), kept in memory and read again when a token names a
//! key it does not hold (the provider rotated) or when it has grown old.
//! Each reading of the set is numbered, so what was verified under one
//! reading can tell when the set has been read again (`auth` keeps tokens).
//! When the provider is down, the set held stays in use ("stale if error"):
//! its keys still verify, and a key's removal can only be learned from a
//! read that works. A failed read is tried again at most every
//! `min_refresh`.
//! Keys are only ever public: a JWKS `oct` (shared secret) key is refused,
//! so nobody can sign an HS256 token with a key the provider publishes.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm},
};
use tokio::sync::{Mutex, RwLock};

/// Largest key set read, in bytes.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// How long a fetch of the key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the key set comes from and how often it is read again.
#[derive(Clone, Debug)]
pub struct JwksSource {
    /// `https://…` or `http://…` to fetch, anything else a file path
    /// (`file://` optional).
    pub location: String,
    /// The key set is read again after this long, whatever tokens say.
    /// When that read fails, the set held is kept.
    pub max_age: Duration,
    /// A token naming an unknown key reads the set again at most this often,
    /// so tokens with made-up key ids cannot make hookline hammer the
    /// provider; a failed read is tried again at most this often too.
    pub min_refresh: Duration,
}

/// One usable key: the algorithm it verifies and the key itself.
struct Key {
    algorithm: Algorithm,
    decoding: DecodingKey,
}

struct Loaded {
    keys: HashMap<String, Arc<Key>>,
    /// When this set was read.
    read_at: Instant,
    /// When it was last tried to read the set again: `read_at`, or later
    /// when that failed and this set was kept.
    tried_at: Instant,
    /// Which reading of the set this is: one more than the one it replaced.
    generation: u64,
}

/// The key a token names, as the set held it.
pub struct Held {
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
    /// The reading of the set the key came from (see [`Jwks::current`]).
    pub generation: u64,
}

pub struct Jwks {
    source: JwksSource,
    client: reqwest::Client,
    loaded: RwLock<Option<Loaded>>,
    /// One read of the set at a time; others wait for its result.
    reading: Mutex<()>,
}

impl Jwks {
    pub fn new(source: JwksSource) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .unwrap_or_default();
        Self {
            source,
            client,
            loaded: RwLock::new(None),
            reading: Mutex::new(()),
        }
    }

    /// The key `kid` for `algorithm`, reading the set again when it is
    /// unknown or the set has grown old. `Err` says why there is none.
    pub async fn key(&self, kid: &str, algorithm: Algorithm) -> Result<Held, String> {
        if let Some(found) = self.held(kid, false).await {
            return matching(found, kid, algorithm);
        }
        let _reading = match self.reading.try_lock() {
            Ok(reading) => reading,
            Err(_) => {
                // Another request is reading the set, which may take up to
                // FETCH_TIMEOUT: a key of the set held answers meanwhile.
                if let Some(found) = self.held(kid, true).await {
                    return matching(found, kid, algorithm);
                }
                self.reading.lock().await
            }
        };
        // Another request may have read the set while this one waited.
        if let Some(found) = self.held(kid, false).await {
            return matching(found, kid, algorithm);
        }
        let recently = self
            .loaded
            .read()
            .await
            .as_ref()
            .is_some_and(|l| l.tried_at.elapsed() < self.source.min_refresh);
        if !recently {
            self.read_again().await?;
        }
        match self.held(kid, true).await {
            Some(found) => matching(found, kid, algorithm),
            None => Err(format!("token key `{}` is not in the JWKS", short(kid))),
        }
    }

    /// Reads the set again and holds it as the next reading. When that
    /// fails, the set held is kept, as the same reading, and tried again
    /// after `min_refresh`; `Err` only when no set was ever read.
    async fn read_again(&self) -> Result<(), String> {
        let read = self.read_set().await;
        let mut loaded = self.loaded.write().await;
        match (read, loaded.as_mut()) {
            (Ok(keys), old) => {
                let generation = old.map_or(0, |old| old.generation + 1);
                let now = Instant::now();
                *loaded = Some(Loaded {
                    keys,
                    read_at: now,
                    tried_at: now,
                    generation,
                });
            }
            (Err(err), Some(kept)) => {
                kept.tried_at = Instant::now();
                tracing::warn!(
                    "could not read the JWKS again, keeping the set read {} s ago \
                     (next try in {} ms at the earliest): {err}",
                    kept.read_at.elapsed().as_secs(),
                    self.source.min_refresh.as_millis()
                );
            }
            (Err(err), None) => return Err(err),
        }
        Ok(())
    }

    /// Whether the set held answers without being read again: while it is
    /// younger than `max_age`, and, once the last try to read it again
    /// failed, for `min_refresh` after that try.
    fn answers(&self, loaded: &Loaded) -> bool {
        let failed = loaded.tried_at > loaded.read_at;
        loaded.read_at.elapsed() < self.source.max_age
            || (failed && loaded.tried_at.elapsed() < self.source.min_refresh)
    }

    /// The key as held now, with the reading it came from; `stale_ok` takes
    /// it even from a set due to be read again.
    async fn held(&self, kid: &str, stale_ok: bool) -> Option<(Arc<Key>, u64)> {
        let loaded = self.loaded.read().await;
        let loaded = loaded.as_ref()?;
        if !stale_ok && !self.answers(loaded) {
            return None;
        }
        Some((loaded.keys.get(kid).cloned()?, loaded.generation))
    }

    /// The reading of the set held now, while it answers: younger than
    /// `max_age`, or kept after a failed read less than `min_refresh` ago.
    /// A token verified under this reading's key still verifies: no key is
    /// known to have left since. `None` (a set due to be read again, or none
    /// read) means checking a token reads it, the only thing that does.
    pub async fn current(&self) -> Option<u64> {
        let loaded = self.loaded.read().await;
        let loaded = loaded.as_ref()?;
        self.answers(loaded).then_some(loaded.generation)
    }

    async fn read_set(&self) -> Result<HashMap<String, Arc<Key>>, String> {
        let location = self.source.location.as_str();
        let bytes = if location.starts_with("https://") || location.starts_with("http://") {
            self.fetch(location).await
        } else {
            let path = location.strip_prefix("file://").unwrap_or(location);
            tokio::fs::read(path)
                .await
                .map_err(|err| format!("cannot read the JWKS file: {err}"))
        }?;
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
        }
        let set: JwkSet = serde_json::from_slice(&bytes)
            .map_err(|err| format!("the JWKS is not valid: {err}"))?;
        Ok(usable_keys(&set))
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|err| format!("cannot fetch the JWKS: {err}"))?;
        if !response.status().is_success() {
            return Err(format!("the JWKS URL answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| format!("cannot fetch the JWKS: {err}"))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                break;
            }
        }
        Ok(body)
    }
}

/// The set's signing keys hookline can use, by `kid`; others are skipped
/// (encryption keys, shared secrets, curves it does not verify).
fn usable_keys(set: &JwkSet) -> HashMap<String, Arc<Key>> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = usable(jwk)?;
            Some((kid, Arc::new(key)))
        })
        .collect()
}

fn usable(jwk: &Jwk) -> Option<Key> {
    use jsonwebtoken::jwk::PublicKeyUse;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    let declared = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        Some(_) => return None,
    };
    if declared.is_some_and(|d| d != algorithm) {
        return None;
    }
    Some(Key {
        algorithm,
        decoding: DecodingKey::from_jwk(jwk).ok()?,
    })
}

fn matching(
    (key, generation): (Arc<Key>, u64),
    kid: &str,
    algorithm: Algorithm,
) -> Result<Held, String> {
    if key.algorithm == algorithm {
        Ok(Held {
            algorithm: key.algorithm,
            decoding: key.decoding.clone(),
            generation,
        })
    } else {
        Err(format!(
            "token algorithm {algorithm:?} does not match key `{}` ({:?})",
            short(kid),
            key.algorithm
        ))
    }
}

/// A key id as quoted in an error: at most 64 characters of it.
fn short(kid: &str) -> String {
    kid.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(json: serde_json::Value) -> HashMap<String, Arc<Key>> {
        usable_keys(&serde_json::from_value(json).expect("a JWKS"))
    }

    #[test]
    fn shared_secrets_and_encryption_keys_are_never_used() {
        let keys = set(serde_json::json!({"keys": [
            {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "sig", "use": "sig",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "mislabelled", "alg": "RS256",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]}));
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["sig"]);
        assert_eq!(keys["sig"].algorithm, Algorithm::EdDSA);
        let sig = || (keys["sig"].clone(), 0);
        assert!(matching(sig(), "sig", Algorithm::RS256).is_err());
        assert!(matching(sig(), "sig", Algorithm::EdDSA).is_ok());
    }

    /// Stale if error: a set that cannot be read again is kept, as the same
    /// reading, and tried again only after `min_refresh`; with none read
    /// before, there is nothing to keep.
    #[tokio::test]
    async fn a_set_that_cannot_be_read_again_is_kept_until_a_read_works() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        let write = |kids: &[&str]| {
            let keys: Vec<_> = kids
                .iter()
                .map(|kid| {
                    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})
                })
                .collect();
            let set = serde_json::json!({ "keys": keys }).to_string();
            std::fs::write(&path, set).expect("write the JWKS");
        };
        let jwks = Jwks::new(JwksSource {
            location: path.display().to_string(),
            max_age: Duration::from_millis(300),
            min_refresh: Duration::from_millis(200),
        });
        let key = |kid: &'static str| jwks.key(kid, Algorithm::EdDSA);
        assert!(key("a").await.is_err(), "no set read, none to keep");

        write(&["a", "b"]);
        assert_eq!(key("a").await.expect("read").generation, 0);
        std::fs::remove_file(&path).expect("the provider goes down");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(jwks.current().await, None, "due to be read again");
        assert_eq!(key("a").await.expect("kept").generation, 0);
        assert_eq!(jwks.current().await, Some(0), "kept, no read per request");
        // Back, without "a": not read again before min_refresh.
        write(&["b"]);
        let unknown = key("c").await.err().expect("not in the set kept");
        assert!(unknown.contains("not in the JWKS"), "{unknown}");
        assert_eq!(key("a").await.expect("still kept").generation, 0);

        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            jwks.current().await,
            None,
            "tried again once min_refresh passed"
        );
        let removed = key("a").await.err().expect("the new set lacks it");
        assert!(removed.contains("not in the JWKS"), "{removed}");
        assert_eq!(key("b").await.expect("read").generation, 1);
    }
}
