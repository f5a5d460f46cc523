//! Who may call, and from where: the identity provider's tokens, the
//! browser origins allowed to call the API, the pages allowed to embed the
//! partner portal, and what partners may hold.

use std::time::Duration;

use clap::Args;

use crate::auth::{ClaimNames, Provider, jwks::JwksSource};

#[derive(Args, Clone, Debug)]
pub struct AccessConfig {
    /// JSON Web Key Set of the network's identity provider: an `https://`
    /// (or `http://`) URL, or a file. Tokens signed RS256, ES256 or EdDSA
    /// with one of its keys (by `kid`) are accepted beside hookline's own
    /// HS256 tokens. Read again when a token names an unknown key.
    #[arg(long, env = "HOOKLINE_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// The `iss` every identity-provider token must carry.
    #[arg(long, env = "HOOKLINE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// An `aud` every identity-provider token must carry.
    #[arg(long, env = "HOOKLINE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// The claim of an identity-provider token that names the tenant.
    #[arg(long, env = "HOOKLINE_JWT_TENANT_CLAIM", default_value = "tenant")]
    pub jwt_tenant_claim: String,

    /// The claim that gives the role (`admin`, `publisher`, `viewer` or
    /// `partner`; a list grants the most powerful it names).
    #[arg(long, env = "HOOKLINE_JWT_ROLE_CLAIM", default_value = "role")]
    pub jwt_role_claim: String,

    /// The claim that gives the caller's login (a partner's login).
    #[arg(long, env = "HOOKLINE_JWT_LOGIN_CLAIM", default_value = "sub")]
    pub jwt_login_claim: String,

    /// How often the key set is read again at most, when tokens name keys
    /// it does not hold.
    #[arg(long, env = "HOOKLINE_JWKS_MIN_REFRESH", default_value = "10s", value_parser = humantime::parse_duration)]
    pub jwks_min_refresh: Duration,

    /// How long a key set read is trusted before it is read again.
    #[arg(long, env = "HOOKLINE_JWKS_MAX_AGE", default_value = "10m", value_parser = humantime::parse_duration)]
    pub jwks_max_age: Duration,

    /// Browser origins that may call `/graphql` (CORS), comma-separated,
    /// e.g. `https://app.network.example`. Unset: only this server's own
    /// pages may.
    #[arg(long, env = "HOOKLINE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Pages that may embed the partner portal in a frame
    /// (`frame-ancestors`), space- or comma-separated origins. Unset: none.
    #[arg(long, env = "HOOKLINE_PORTAL_FRAME_ANCESTORS", value_delimiter = ',')]
    pub portal_frame_ancestors: Vec<String>,

    /// Most webhooks one partner login may hold.
    #[arg(long, env = "HOOKLINE_MAX_WEBHOOKS_PER_PARTNER", default_value_t = 20)]
    pub max_webhooks_per_partner: u64,
}

impl AccessConfig {
    /// The identity provider, when one is configured.
    pub fn provider(&self) -> Option<Provider> {
        let location = self.jwks_url.clone()?;
        Some(Provider {
            jwks: JwksSource {
                location,
                max_age: self.jwks_max_age,
                min_refresh: self.jwks_min_refresh,
            },
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            claims: ClaimNames {
                tenant: self.jwt_tenant_claim.clone(),
                role: self.jwt_role_claim.clone(),
                login: self.jwt_login_claim.clone(),
            },
        })
    }

    /// Origins as a browser sends them: scheme, host and port, no path.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, list) in [
            ("HOOKLINE_CORS_ORIGINS", &self.cors_origins),
            (
                "HOOKLINE_PORTAL_FRAME_ANCESTORS",
                &self.portal_frame_ancestors,
            ),
        ] {
            for origin in list.iter().flat_map(|o| o.split_whitespace()) {
                check_origin(origin).map_err(|why| anyhow::anyhow!("{name}: `{origin}` {why}"))?;
            }
        }
        Ok(())
    }

    /// Every frame ancestor, one per item.
    pub fn frame_ancestors(&self) -> Vec<String> {
        self.portal_frame_ancestors
            .iter()
            .flat_map(|o| o.split_whitespace())
            .map(str::to_owned)
            .collect()
    }
}

fn check_origin(origin: &str) -> Result<(), &'static str> {
    let url = url::Url::parse(origin).map_err(|_| "is not an origin like https://app.example")?;
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    let scheme = matches!(url.scheme(), "http" | "https");
    if !bare || !scheme || url.host().is_none() || origin.ends_with('/') {
        return Err("is not an origin like https://app.example (scheme, host, port; no path)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_origin;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert!(check_origin("https://app.example").is_ok());
        assert!(check_origin("http://127.0.0.1:5173").is_ok());
        assert!(check_origin("https://app.example/").is_err());
        assert!(check_origin("https://app.example/path").is_err());
        assert!(check_origin("app.example").is_err());
        assert!(check_origin("ftp://app.example").is_err());
        assert!(check_origin("*").is_err());
    }
}
