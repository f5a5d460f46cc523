//! The partner portal: a link that opens the dashboard signed in as one
//! partner, for the network to embed in its own pages.

use std::time::Duration;

use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use crate::{
    auth::Role,
    domain::{reach::MAX_LOGIN_LEN, validate},
    error::AppError,
    graphql::{context::ContextExt, types::datetime},
};

/// Shortest and longest life of a portal session, in seconds.
const TTL_SECONDS: (i32, i32) = (60, 24 * 3600);
const DEFAULT_TTL_SECONDS: i32 = 3600;

/// A partner's way into the dashboard.
#[derive(SimpleObject)]
pub struct PortalSession {
    /// Opens the dashboard signed in as the partner. The token travels in
    /// the fragment (`#token=…`), which browsers never send to a server.
    url: String,
    /// The partner token itself (role `partner`), for a frontend of your own.
    token: String,
    expires_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct PortalMutation;

#[Object]
impl PortalMutation {
    /// A short-lived session for partner `login`: it manages only the
    /// webhooks that belong to that login and reads only their deliveries.
    /// `ttlSeconds` 60 to 86 400 (default 3 600). Admin only.
    async fn create_portal_session(
        &self,
        ctx: &Context<'_>,
        login: String,
        ttl_seconds: Option<i32>,
    ) -> Result<PortalSession> {
        let principal = ctx.require(Role::Admin)?;
        let login = validate::text("login", &login, 1, MAX_LOGIN_LEN)?;
        let ttl = ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        if !(TTL_SECONDS.0..=TTL_SECONDS.1).contains(&ttl) {
            return Err(AppError::bad_input(
                "ttlSeconds",
                format!("must be between {} and {}", TTL_SECONDS.0, TTL_SECONDS.1),
            )
            .into());
        }
        let state = ctx.state();
        let token = state
            .jwt
            .issue(
                &principal.tenant,
                &login,
                Role::Partner,
                Duration::from_secs(ttl as u64),
            )
            .map_err(AppError::internal)?;
        let expires_at = crate::time::now_ms() + i64::from(ttl) * 1000;
        Ok(PortalSession {
            url: format!("{}/?portal#token={token}", state.public_url()),
            token,
            expires_at: datetime(expires_at),
        })
    }
}
