use async_graphql::{Enum, SimpleObject};

use crate::auth::{self, Principal};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(remote = "auth::Role")]
pub enum Role {
    /// An affiliate or advertiser: its own webhooks and their deliveries only.
    Partner,
    Admin,
    Publisher,
    Viewer,
}

/// The caller, as their token describes them.
#[derive(SimpleObject)]
pub struct Viewer {
    pub tenant: String,
    /// The token's `sub`: the caller's login id.
    pub login: String,
    pub role: Role,
}

impl From<&Principal> for Viewer {
    fn from(principal: &Principal) -> Self {
        Self {
            tenant: principal.tenant.clone(),
            login: principal.login.clone(),
            role: principal.role.into(),
        }
    }
}
