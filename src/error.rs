//! One error type for the whole service, with the stable codes clients see in
//! `extensions.code`.

use std::time::Duration;

/// Everything a request can fail with. Internal variants carry the cause for
/// the log; clients only ever see "internal error".
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Input that fails validation; `field` is the input path, e.g.
    /// `input.endpoints[1].url`.
    #[error("{field}: {message}")]
    BadInput { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("rate limit exceeded, retry in {} ms", retry_after.as_millis())]
    RateLimited { retry_after: Duration },
    /// The database cannot be reached: nothing was stored; retrying is safe.
    #[error("the database is unavailable; nothing was stored, retry later")]
    Unavailable(#[source] sea_orm::DbErr),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
    /// A race with a concurrent change; the operation may simply run again.
    /// Never reaches a client: callers retry, and would report it as internal.
    #[error("internal error")]
    Retry,
}

impl AppError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::BadInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        Self::Internal(cause.into())
    }

    /// The value of `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::BadInput { .. } => "BAD_USER_INPUT",
            Self::Conflict(_) => "CONFLICT",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Internal(_) | Self::Retry => "INTERNAL",
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        if is_connection_error(&err) {
            Self::Unavailable(err)
        } else {
            Self::Internal(err.into())
        }
    }
}

/// Whether the database could not be reached at all (as opposed to refusing
/// a statement).
pub fn is_connection_error(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx::Error as Sqlx};
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            match inner.as_ref() {
                Sqlx::Io(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::Tls(_)
                | Sqlx::WorkerCrashed => true,
                // SQLSTATE classes 08 (connection exception) and 57 (operator
                // intervention: the server is shutting down or starting up).
                Sqlx::Database(db) => db
                    .code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57")),
                _ => false,
            }
        }
        _ => false,
    }
}

impl<E> From<sea_orm::TransactionError<E>> for AppError
where
    E: Into<AppError> + std::error::Error,
{
    fn from(err: sea_orm::TransactionError<E>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(inner) => inner.into(),
        }
    }
}

impl AppError {
    /// The same error once more, for each of several callers that share one
    /// failed operation (a group commit). Causes are kept as text.
    pub fn duplicate(&self) -> Self {
        match self {
            Self::Unauthenticated(m) => Self::Unauthenticated(m.clone()),
            Self::Forbidden(m) => Self::Forbidden(m.clone()),
            Self::NotFound(what) => Self::NotFound(what),
            Self::BadInput { field, message } => Self::BadInput {
                field: field.clone(),
                message: message.clone(),
            },
            Self::Conflict(m) => Self::Conflict(m.clone()),
            Self::RateLimited { retry_after } => Self::RateLimited {
                retry_after: *retry_after,
            },
            Self::Unavailable(db) => Self::Unavailable(db.clone()),
            Self::Internal(cause) => Self::Internal(anyhow::anyhow!("{cause:#}")),
            Self::Retry => Self::Retry,
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
