//! Who is calling: a JWT with `sub`, `tenant`, `role` and `exp`, turned
//! into a [`Principal`], and the role checks resolvers make. hookline's own
//! tokens are HS256 under its secret; tokens from the network's identity
//! provider (RS256, ES256, EdDSA) are checked against its JWKS ([`jwks`]),
//! with its issuer, audience and claim names.

pub mod jwks;
mod provider;

use provider::provider_algorithm;

use std::{sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::{error::AppError, kept::KeptByText};

/// Longest token whose verification is kept, in bytes.
const LONGEST_KEPT_TOKEN: usize = 2 * 1024;
/// Bytes of tokens whose verification is kept.
const KEPT_TOKEN_BYTES: usize = 1024 * 1024;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An affiliate or advertiser of the network (its login is the token's
    /// `sub`): manages only its own webhooks and reads only their
    /// deliveries. Below every staff role, so a check for any of them
    /// refuses it.
    Partner,
    /// Reads everything in the tenant and subscribes to live streams.
    Viewer,
    /// A viewer that may also publish events (platform services).
    Publisher,
    /// Manages webhooks and event types, and everything else.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Partner => "partner",
            Self::Viewer => "viewer",
            Self::Publisher => "publisher",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "partner" => Ok(Self::Partner),
            "viewer" => Ok(Self::Viewer),
            "publisher" => Ok(Self::Publisher),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown role `{other}` (admin, publisher, viewer or partner)"
            )),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub tenant: String,
    pub role: Role,
    pub exp: i64,
}

/// The authenticated caller. Every query is scoped to `tenant`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub login: String,
    pub role: Role,
    /// When the token expires (epoch seconds); long-lived sockets end then.
    pub expires_at: i64,
}

impl Principal {
    /// The instant (epoch ms) from which the token no longer counts: its
    /// `exp` itself, as RFC 7519 says ("on or after").
    pub fn expires_at_ms(&self) -> i64 {
        self.expires_at.saturating_mul(1000)
    }

    /// Whether the token has run out by `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at_ms()
    }

    /// `FORBIDDEN` unless the caller has at least `role`.
    pub fn require(&self, role: Role) -> Result<(), AppError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this operation requires the {} role",
                role.as_str()
            )))
        }
    }
}

/// What the request's credentials amount to. Kept as a value so a query that
/// needs no authentication (introspection) still works with a bad token, while
/// every resolver that needs a principal reports why there is none.
#[derive(Clone, Debug)]
pub enum Auth {
    Anonymous,
    Invalid(String),
    Valid(Principal),
}

impl Auth {
    pub fn principal(&self) -> Result<&Principal, AppError> {
        match self {
            Self::Valid(principal) => Ok(principal),
            Self::Anonymous => Err(AppError::Unauthenticated(
                "missing credentials: send `Authorization: Bearer <token>`".into(),
            )),
            Self::Invalid(reason) => Err(AppError::Unauthenticated(reason.clone())),
        }
    }
}

/// Tokens from an identity provider: where its keys are, what its tokens
/// must say of themselves, and which claims carry what.
#[derive(Clone, Debug)]
pub struct Provider {
    pub jwks: jwks::JwksSource,
    /// The `iss` its tokens must carry, when set.
    pub issuer: Option<String>,
    /// An `aud` its tokens must carry, when set.
    pub audience: Option<String>,
    pub claims: ClaimNames,
}

/// The claims a provider's tokens carry the tenant, role and login in.
#[derive(Clone, Debug)]
pub struct ClaimNames {
    pub tenant: String,
    pub role: String,
    pub login: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            tenant: "tenant".into(),
            role: "role".into(),
            login: "sub".into(),
        }
    }
}

struct External {
    jwks: jwks::Jwks,
    provider: Provider,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    external: Option<Arc<External>>,
    /// Tokens whose signature and claims checked out, with what they said.
    /// A publisher sends the same token with every request, and checking
    /// its signature cost about a twentieth of a small request's
    /// instructions. Only the signature and the claims' form are taken from
    /// here: expiry is checked on every use. hookline's secret never changes
    /// while it lives, but the provider's JWKS does (a key it removes is
    /// revoked), so a provider's token is answered from here only while the
    /// reading of the set that verified it is the one held, and fresh.
    verified: Arc<KeptByText<Verified>>,
}

/// A token whose signature and claims checked out.
#[derive(Clone)]
struct Verified {
    principal: Principal,
    /// For a provider's token, the reading of its JWKS the key came from;
    /// `None` under hookline's own secret.
    generation: Option<u64>,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // No grace after `exp`: a socket is closed at that instant, so an
        // HTTP request a second later must not be let in either.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            external: None,
            verified: Arc::new(KeptByText::new(LONGEST_KEPT_TOKEN, KEPT_TOKEN_BYTES)),
        }
    }

    /// Also accepts tokens from `provider`. Starts from nothing kept, so no
    /// answer of other keys stands for the new ones.
    pub fn with_provider(mut self, provider: Option<Provider>) -> Self {
        self.verified = Arc::new(KeptByText::new(LONGEST_KEPT_TOKEN, KEPT_TOKEN_BYTES));
        self.external = provider.map(|provider| {
            Arc::new(External {
                jwks: jwks::Jwks::new(provider.jwks.clone()),
                provider,
            })
        });
        self
    }

    pub fn issue(
        &self,
        tenant: &str,
        login: &str,
        role: Role,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        check_tenant(tenant).map_err(anyhow::Error::msg)?;
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: login.to_owned(),
            tenant: tenant.to_owned(),
            role,
            exp: chrono::Utc::now().timestamp().saturating_add(ttl),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies a bearer token: HS256 under hookline's secret, or, with a
    /// provider, RS256/ES256/EdDSA under a key of its JWKS. Nothing else is
    /// accepted, so `alg: none` and algorithm-confusion tokens fail like a
    /// bad signature.
    pub async fn verify(&self, token: &str) -> Result<Principal, String> {
        self.verify_at(token, crate::time::now_ms()).await
    }

    async fn verify_at(&self, token: &str, now_ms: i64) -> Result<Principal, String> {
        if let Some(kept) = self.verified.get(token) {
            if kept.principal.is_expired(now_ms) {
                self.verified.forget(token);
                return Err("token expired".to_owned());
            }
            if self.still_current(kept.generation).await {
                return Ok(kept.principal);
            }
            // The JWKS was read again, or is due to be: checked afresh, and
            // not kept if its key has left.
            self.verified.forget(token);
        }
        let verified = self.check_afresh(token, now_ms).await?;
        self.verified.keep(token, verified.clone());
        Ok(verified.principal)
    }

    /// Whether a kept token's keys are still the ones held: always for
    /// hookline's secret, and for a provider's token while the JWKS held is
    /// the reading its key came from and not yet due to be read again (a
    /// hit never reads the set, so a set left old would never be read).
    async fn still_current(&self, generation: Option<u64>) -> bool {
        let Some(generation) = generation else {
            return true;
        };
        match &self.external {
            Some(external) => external.jwks.current().await == Some(generation),
            None => false,
        }
    }

    /// A token checked against the keys, not against what was kept.
    async fn check_afresh(&self, token: &str, now_ms: i64) -> Result<Verified, String> {
        // The header is read for the provider only when there is one.
        let provider = self
            .external
            .as_ref()
            .and_then(|external| Some((external, provider_algorithm(token)?)));
        Ok(match provider {
            Some((external, algorithm)) => {
                let (principal, generation) = external.check(token, algorithm, now_ms).await?;
                Verified {
                    principal,
                    generation: Some(generation),
                }
            }
            None => Verified {
                principal: self.check(token, now_ms)?,
                generation: None,
            },
        })
    }

    /// The signature and claims of a token not seen before.
    fn check(&self, token: &str, now_ms: i64) -> Result<Principal, String> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => "token expired".to_owned(),
                ErrorKind::InvalidSignature => "invalid token signature".to_owned(),
                ErrorKind::InvalidAlgorithm => {
                    "token algorithm not accepted (HS256 only)".to_owned()
                }
                ErrorKind::MissingRequiredClaim(claim) => {
                    format!("token lacks the `{claim}` claim")
                }
                _ => match foreign_algorithm(token) {
                    Some(alg) => format!("token algorithm `{alg}` not accepted (HS256 only)"),
                    None => "malformed token".to_owned(),
                },
            })?;
        let claims = data.claims;
        // The library still accepts the very second of `exp`.
        if claims.exp.saturating_mul(1000) <= now_ms {
            return Err("token expired".to_owned());
        }
        check_tenant(&claims.tenant)?;
        if claims.sub.is_empty() || claims.sub.len() > 256 {
            return Err("token `sub` must be 1 to 256 characters".into());
        }
        Ok(Principal {
            tenant: claims.tenant,
            login: claims.sub,
            role: claims.role,
            expires_at: claims.exp,
        })
    }

    /// Resolves an `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Auth {
        let Some(value) = header else {
            return Auth::Anonymous;
        };
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim);
        match token {
            Some(token) if !token.is_empty() => match self.verify(token).await {
                Ok(principal) => Auth::Valid(principal),
                Err(reason) => Auth::Invalid(reason),
            },
            _ => Auth::Invalid("the Authorization header must be `Bearer <token>`".into()),
        }
    }
}

/// The `alg` of a token whose header names an algorithm other than HS256
/// (`none`, say), which the JWT library reports only as a malformed token.
fn foreign_algorithm(token: &str) -> Option<String> {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let header = token.split('.').next()?;
    let json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    let alg = json.get("alg")?.as_str()?;
    (alg != "HS256").then(|| alg.chars().take(16).collect())
}

/// Tenant ids name a tenant in every query, so they are kept plain.
fn check_tenant(tenant: &str) -> Result<(), String> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err("token `tenant` must be 1 to 64 letters, digits, `-`, `_` or `.`".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[tokio::test]
    async fn issued_tokens_verify() {
        let keys = JwtKeys::new(SECRET);
        let token = keys
            .issue("acme", "alice", Role::Admin, Duration::from_secs(60))
            .expect("issued");
        let principal = keys.verify(&token).await.expect("valid");
        assert_eq!(principal.tenant, "acme");
        assert_eq!(principal.login, "alice");
        assert_eq!(principal.role, Role::Admin);
    }

    #[tokio::test]
    async fn tokens_signed_with_another_secret_are_refused() {
        let other = JwtKeys::new(b"another-secret-another-secret-xx");
        let token = other
            .issue("acme", "alice", Role::Admin, Duration::from_secs(60))
            .expect("issued");
        let err = JwtKeys::new(SECRET)
            .verify(&token)
            .await
            .expect_err("refused");
        assert_eq!(err, "invalid token signature");
    }

    #[tokio::test]
    async fn tokens_expire_at_exp_without_leeway() {
        let keys = JwtKeys::new(SECRET);
        let claims = Claims {
            sub: "alice".into(),
            tenant: "acme".into(),
            role: Role::Admin,
            exp: chrono::Utc::now().timestamp() - 1,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
            .expect("encoded");
        assert_eq!(
            keys.verify(&token).await.expect_err("expired"),
            "token expired"
        );
        let principal = Principal {
            tenant: "t".into(),
            login: "l".into(),
            role: Role::Viewer,
            expires_at: 10,
        };
        assert!(!principal.is_expired(9_999));
        assert!(principal.is_expired(10_000));
    }

    #[tokio::test]
    async fn a_token_checked_before_still_expires_and_a_forged_one_is_still_refused() {
        let keys = JwtKeys::new(SECRET);
        let token = keys
            .issue("acme", "alice", Role::Publisher, Duration::from_secs(60))
            .expect("issued");
        let now = crate::time::now_ms();
        let principal = keys.verify_at(&token, now).await.expect("valid");
        assert_eq!(keys.verified.bytes(), token.len(), "kept");
        assert_eq!(
            keys.verify_at(&token, now + 1_000).await,
            Ok(principal.clone())
        );
        // Kept, it still runs out at its `exp`, and is forgotten then.
        let at_exp = principal.expires_at_ms();
        assert_eq!(
            keys.verify_at(&token, at_exp).await,
            Err("token expired".to_owned())
        );
        assert_eq!(keys.verified.bytes(), 0, "forgotten once expired");
        // The same claims under another signature are checked afresh.
        let (head, _) = token.rsplit_once('.').expect("three parts");
        let forged = format!("{head}.{}", "A".repeat(43));
        assert_eq!(
            keys.verify_at(&forged, now).await,
            Err("invalid token signature".to_owned())
        );
        // Other keys do not share what these ones kept.
        let other = JwtKeys::new(b"another-secret-another-secret-xx");
        assert_eq!(
            other.verify_at(&token, now).await,
            Err("invalid token signature".to_owned())
        );
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Admin > Role::Publisher && Role::Publisher > Role::Viewer);
        let viewer = Principal {
            tenant: "t".into(),
            login: "v".into(),
            role: Role::Viewer,
            expires_at: 0,
        };
        assert!(viewer.require(Role::Viewer).is_ok());
        assert!(matches!(
            viewer.require(Role::Admin),
            Err(AppError::Forbidden(_))
        ));
    }
}
