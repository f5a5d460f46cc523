//! What resolvers need from the request context: the app state and the caller.

use std::sync::Arc;

use async_graphql::Context;

use crate::{
    auth::{Auth, Principal, Role},
    error::AppError,
    state::AppState,
};

pub trait ContextExt {
    fn state(&self) -> &Arc<AppState>;
    /// The authenticated caller, or `UNAUTHENTICATED`.
    fn principal(&self) -> Result<&Principal, AppError>;
    /// The caller, if they hold at least `role`; `FORBIDDEN` otherwise.
    fn require(&self, role: Role) -> Result<&Principal, AppError>;
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
}
