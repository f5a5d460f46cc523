//! What resolvers need from the request context: the app state and the caller.

use std::sync::Arc;

use async_graphql::Context;

use crate::{
    auth::{Auth, Principal, Role},
    domain::reach::Reach,
    error::AppError,
    state::AppState,
};

pub trait ContextExt {
    fn state(&self) -> &Arc<AppState>;
    /// The authenticated caller, or `UNAUTHENTICATED`.
    fn principal(&self) -> Result<&Principal, AppError>;
    /// The caller, if they hold at least `role`; `FORBIDDEN` otherwise.
    fn require(&self, role: Role) -> Result<&Principal, AppError>;
    /// Any caller, with how far it reaches: a partner only to its own
    /// webhooks, the network's staff to the whole tenant.
    fn reader(&self) -> Result<(&Principal, Reach), AppError>;
    /// A caller who may manage webhooks: an admin (the whole tenant) or a
    /// partner (its own webhooks); `FORBIDDEN` for anyone else.
    fn manager(&self) -> Result<(&Principal, Reach), AppError>;
}

impl ContextExt for Context<'_> {
    fn state(&self) -> &Arc<AppState> {
        self.data_unchecked::<Arc<AppState>>()
    }

    fn principal(&self) -> Result<&Principal, AppError> {
        static ANONYMOUS: Auth = Auth::Anonymous;
        self.data_opt::<Auth>().unwrap_or(&ANONYMOUS).principal()
    }

    fn require(&self, role: Role) -> Result<&Principal, AppError> {
        let principal = self.principal()?;
        principal.require(role)?;
        Ok(principal)
    }

    fn reader(&self) -> Result<(&Principal, Reach), AppError> {
        let principal = self.principal()?;
        Ok((principal, reach_of(principal)))
    }

    fn manager(&self) -> Result<(&Principal, Reach), AppError> {
        let principal = self.principal()?;
        if principal.role != Role::Partner {
            principal.require(Role::Admin)?;
        }
        Ok((principal, reach_of(principal)))
    }
}

fn reach_of(principal: &Principal) -> Reach {
    match principal.role {
        Role::Partner => Reach::Partner(principal.login.clone()),
        _ => Reach::Tenant,
    }
}
