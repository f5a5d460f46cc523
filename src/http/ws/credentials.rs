//! Who may open a socket, what its session was opened with, and checking
//! that again while it lives.

use axum::http::{HeaderMap, header};

use crate::auth::{Auth, JwtKeys};

/// Whether a browser page may open the socket: with an allow-list, pages
/// of the listed origins and of this server; without one, any (tokens, not
/// cookies, authenticate, so another site's page gains nothing by it).
/// Clients that are not browsers send no `Origin`.
pub(super) fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if allowed.is_empty() || allowed.iter().any(|a| a == origin) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let own = origin.split_once("://").map(|(_, authority)| authority);
    host.is_some() && own == host
}

/// The credentials a connection's session is opened with: the
/// `Authorization` entry of the `connection_init` payload when there is
/// one, otherwise the upgrade request's header.
pub(super) fn chosen(payload: &serde_json::Value, header: Option<&str>) -> Option<String> {
    ["Authorization", "authorization"]
        .iter()
        .find_map(|key| payload.get(key))
        .and_then(|value| value.as_str())
        .or(header)
        .map(str::to_owned)
}

/// Why a session's credentials no longer let it in (`None` while they
/// do). A token verified before is answered from memory until the
/// provider's key set is read again; then it is checked afresh, so a token
/// whose key left the set is refused here as it would be on a request.
pub(super) async fn refused(jwt: &JwtKeys, credentials: Option<&str>) -> Option<String> {
    match jwt.authenticate(credentials).await {
        Auth::Valid(_) | Auth::Anonymous => None,
        Auth::Invalid(reason) => Some(reason),
    }
}
