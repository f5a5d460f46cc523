//! What resolvers need from the request context: the app state and the caller.

use std::sync::Arc;

use async_graphql::{Context, ID};

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

/// The caller of something about one webhook or about all of them: the
/// staff may name any webhook, or none; a partner must name one of its own
/// (`NOT_FOUND` for any other, `BAD_USER_INPUT` on `field` for none).
pub async fn partner_names_own_webhook<'c>(
    ctx: &'c Context<'_>,
    webhook_id: Option<&ID>,
    field: &str,
) -> async_graphql::Result<&'c Principal> {
    let (principal, reach) = ctx.reader()?;
    if reach.login().is_none() {
        return Ok(principal);
    }
    let Some(webhook_id) = webhook_id else {
        return Err(AppError::bad_input(
            field,
            "a partner names one of its webhooks here: give its id",
        )
        .into());
    };
    let id = super::types::ids::parse(webhook_id)?;
    ctx.state()
        .webhooks
        .reachable(&principal.tenant, &reach, &id)
        .await?;
    Ok(principal)
}
