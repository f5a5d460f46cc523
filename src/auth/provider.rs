//! Checking a token from the identity provider: its key from the JWKS,
//! its signature and standard claims, then hookline's own claims under the
//! provider's names.

use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};

use super::{External, Principal, Role, check_tenant};

/// The algorithm of a token signed the way identity providers sign.
pub(super) fn provider_algorithm(token: &str) -> Option<Algorithm> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    matches!(
        header.alg,
        Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
    )
    .then_some(header.alg)
}

impl External {
    /// A provider's token: its key from the JWKS, its signature, `exp`,
    /// `iss` and `aud`, then the tenant, role and login from the configured
    /// claims. Also says which reading of the set the key came from, so a
    /// kept answer can be dropped once the set is read again.
    pub(super) async fn check(
        &self,
        token: &str,
        algorithm: Algorithm,
        now_ms: i64,
    ) -> Result<(Principal, u64), String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token")?;
        let kid = header.kid.ok_or("token names no key (`kid`)")?;
        let held = self.jwks.key(&kid, algorithm).await?;
        let (key, generation) = (held.decoding, held.generation);
        let mut validation = Validation::new(held.algorithm);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        if let Some(issuer) = &self.provider.issuer {
            validation.set_issuer(&[issuer]);
        }
        match &self.provider.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|err| match err.kind() {
            ErrorKind::ExpiredSignature => "token expired".to_owned(),
            ErrorKind::InvalidSignature => "invalid token signature".to_owned(),
            ErrorKind::InvalidIssuer => "token issuer not accepted".to_owned(),
            ErrorKind::InvalidAudience => "token audience not accepted".to_owned(),
            ErrorKind::MissingRequiredClaim(claim) => format!("token lacks the `{claim}` claim"),
            _ => "malformed token".to_owned(),
        })?;
        let claims = data.claims;
        let names = &self.provider.claims;
        let text = |name: &str| -> Result<String, String> {
            claims
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| format!("token lacks the `{name}` claim"))
        };
        let exp = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or(0);
        if exp.saturating_mul(1000) <= now_ms {
            return Err("token expired".to_owned());
        }
        let tenant = text(&names.tenant)?;
        check_tenant(&tenant)?;
        let login = text(&names.login)?;
        if login.is_empty() || login.len() > 256 {
            return Err(format!(
                "token `{}` must be 1 to 256 characters",
                names.login
            ));
        }
        let principal = Principal {
            tenant,
            login,
            role: role_claim(claims.get(&names.role), &names.role)?,
            expires_at: exp,
        };
        Ok((principal, generation))
    }
}

/// The role a provider's claim grants: one role name, or a list of names
/// (the most powerful one it names that hookline knows).
fn role_claim(value: Option<&serde_json::Value>, name: &str) -> Result<Role, String> {
    let names: Vec<&str> = match value {
        Some(serde_json::Value::String(one)) => vec![one.as_str()],
        Some(serde_json::Value::Array(many)) => many.iter().filter_map(|v| v.as_str()).collect(),
        _ => return Err(format!("token lacks the `{name}` claim")),
    };
    names
        .iter()
        .filter_map(|n| n.parse::<Role>().ok())
        .max()
        .ok_or_else(|| format!("token `{name}` names no hookline role"))
}
