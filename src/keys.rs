//! The two keys hookline needs: the JWT secret and the key that encrypts
//! webhook signing secrets at rest.
//!
//! Configured keys always win. With the embedded SQLite default and no keys
//! configured, hookline generates both on first start and keeps them in a
//! `<database>.keys` file (mode 0600) beside the database, so restarts keep
//! working and tokens stay valid. PostgreSQL deployments must configure both:
//! every instance has to share them, and keeping the encryption key in the
//! database would let a dump reveal the secrets it protects.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use rand::RngCore;

use crate::config::StoreConfig;

pub const MIN_JWT_SECRET_LEN: usize = 32;

const KEYS_REQUIRED: &str = "HOOKLINE_JWT_SECRET and HOOKLINE_ENCRYPTION_KEY are required with this \
     database: every instance must share them (generate each with `openssl rand -base64 32`)";

#[derive(Clone)]
pub struct Keys {
    pub jwt_secret: Vec<u8>,
    pub encryption_key: [u8; 32],
    /// Where the keys came from, for the start-up message.
    pub origin: KeyOrigin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    Configured,
    /// Read from (or generated into) this file beside the database.
    KeyFile(PathBuf),
    /// An in-memory database: keys live as long as the process.
    Ephemeral,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Keys {
    pub fn resolve(store: &StoreConfig) -> anyhow::Result<Self> {
        match (&store.jwt_secret, &store.encryption_key) {
            (Some(jwt), Some(enc)) => Ok(Self {
                jwt_secret: parse_jwt_secret(jwt)?,
                encryption_key: parse_encryption_key(enc)?,
                origin: KeyOrigin::Configured,
            }),
            _ => Self::from_store_default(store),
        }
    }

    fn from_store_default(store: &StoreConfig) -> anyhow::Result<Self> {
        let Some(db_path) = sqlite_file(&store.database_url) else {
            if is_sqlite_memory(&store.database_url) {
                let generated = generate_pair();
                return Ok(Self {
                    jwt_secret: pick_jwt(store, generated.0)?,
                    encryption_key: pick_enc(store, generated.1)?,
                    origin: KeyOrigin::Ephemeral,
                });
            }
            bail!(KEYS_REQUIRED);
        };
        let key_path = key_file_path(&db_path);
        let (jwt, enc) = load_or_create(&key_path)?;
        Ok(Self {
            jwt_secret: pick_jwt(store, jwt)?,
            encryption_key: pick_enc(store, enc)?,
            origin: KeyOrigin::KeyFile(key_path),
        })
    }

    /// Checks the configured keys, and that keys are configured where they
    /// must be, without reading or writing a key file: what [`Keys::resolve`]
    /// would refuse for the configuration alone, before anything touches disk.
    pub fn check(store: &StoreConfig) -> anyhow::Result<()> {
        if let Some(jwt) = &store.jwt_secret {
            parse_jwt_secret(jwt)?;
        }
        if let Some(key) = &store.encryption_key {
            parse_encryption_key(key)?;
        }
        let both = store.jwt_secret.is_some() && store.encryption_key.is_some();
        let url = &store.database_url;
        if !both && sqlite_file(url).is_none() && !is_sqlite_memory(url) {
            bail!(KEYS_REQUIRED);
        }
        Ok(())
    }

    /// Whether the JWT secret was configured by the operator.
    pub fn jwt_configured(store: &StoreConfig) -> bool {
        store.jwt_secret.is_some()
    }
}

fn pick_jwt(store: &StoreConfig, fallback: String) -> anyhow::Result<Vec<u8>> {
    parse_jwt_secret(store.jwt_secret.as_deref().unwrap_or(&fallback))
}

fn pick_enc(store: &StoreConfig, fallback: String) -> anyhow::Result<[u8; 32]> {
    parse_encryption_key(store.encryption_key.as_deref().unwrap_or(&fallback))
}

fn parse_jwt_secret(secret: &str) -> anyhow::Result<Vec<u8>> {
    if secret.len() < MIN_JWT_SECRET_LEN {
        bail!("HOOKLINE_JWT_SECRET must be at least {MIN_JWT_SECRET_LEN} characters");
    }
    Ok(secret.as_bytes().to_vec())
}

fn parse_encryption_key(key: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = STANDARD
        .decode(key.trim())
        .context("HOOKLINE_ENCRYPTION_KEY must be base64")?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("HOOKLINE_ENCRYPTION_KEY must decode to exactly 32 bytes"))
}

fn generate_pair() -> (String, String) {
    let mut jwt = [0u8; 32];
    let mut enc = [0u8; 32];
    rand::rng().fill_bytes(&mut jwt);
    rand::rng().fill_bytes(&mut enc);
    (STANDARD.encode(jwt), STANDARD.encode(enc))
}

/// The file path of a `sqlite://` URL, or `None` for other databases and for
/// in-memory SQLite.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || is_sqlite_memory(url) {
        return None;
    }
    Some(PathBuf::from(path))
}

fn is_sqlite_memory(url: &str) -> bool {
    url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory"))
}

fn key_file_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.file_name().unwrap_or_default().to_os_string();
    name.push(".keys");
    db_path.with_file_name(name)
}

fn load_or_create(path: &Path) -> anyhow::Result<(String, String)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            parse_key_file(&text).with_context(|| format!("reading keys from {}", path.display()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let (jwt, enc) = generate_pair();
            write_key_file(path, &jwt, &enc)
                .with_context(|| format!("writing keys to {}", path.display()))?;
            Ok((jwt, enc))
        }
        Err(err) => Err(err).with_context(|| format!("reading keys from {}", path.display())),
    }
}

fn parse_key_file(text: &str) -> anyhow::Result<(String, String)> {
    let mut jwt = None;
    let mut enc = None;
    for line in text.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("HOOKLINE_JWT_SECRET=") {
            jwt = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("HOOKLINE_ENCRYPTION_KEY=") {
            enc = Some(value.to_owned());
        }
    }
    match (jwt, enc) {
        (Some(jwt), Some(enc)) => Ok((jwt, enc)),
        _ => bail!("the file must set HOOKLINE_JWT_SECRET and HOOKLINE_ENCRYPTION_KEY"),
    }
}

fn write_key_file(path: &Path, jwt: &str, enc: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(
        file,
        "# Generated by hookline for the database beside this file. Keep it secret,\n\
         # back it up with the database: without it, webhook secrets cannot be read.\n\
         HOOKLINE_JWT_SECRET={jwt}\nHOOKLINE_ENCRYPTION_KEY={enc}"
    )?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(url: &str) -> StoreConfig {
        StoreConfig {
            database_url: url.to_owned(),
            database_read_url: None,
            database_read_max_lag: std::time::Duration::from_secs(2),
            jwt_secret: None,
            encryption_key: None,
        }
    }

    #[test]
    fn sqlite_keys_are_generated_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/h.db?mode=rwc", dir.path().display());
        let first = Keys::resolve(&store(&url)).expect("generated");
        let second = Keys::resolve(&store(&url)).expect("reused");
        assert_eq!(first.jwt_secret, second.jwt_secret);
        assert_eq!(first.encryption_key, second.encryption_key);
        assert_eq!(
            first.origin,
            KeyOrigin::KeyFile(dir.path().join("h.db.keys"))
        );
    }

    #[test]
    fn postgres_requires_configured_keys() {
        let err = Keys::resolve(&store("postgres://localhost/x")).expect_err("refused");
        assert!(err.to_string().contains("HOOKLINE_JWT_SECRET"));
    }

    #[test]
    fn short_jwt_secret_is_refused() {
        let mut config = store("postgres://localhost/x");
        config.jwt_secret = Some("short".into());
        config.encryption_key = Some(STANDARD.encode([7u8; 32]));
        assert!(Keys::resolve(&config).is_err());
    }

    #[test]
    fn sqlite_urls_map_to_files() {
        assert_eq!(
            sqlite_file("sqlite://hookline.db"),
            Some("hookline.db".into())
        );
        assert_eq!(
            sqlite_file("sqlite:data/x.db?mode=rwc"),
            Some("data/x.db".into())
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://x"), None);
    }
}
