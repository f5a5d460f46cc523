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
    /// A cap on live subscriptions (per socket, tenant or instance) is reached.
    #[error("{0}")]
    TooManySubscriptions(String),
    /// The response would be larger than the per-request budget.
    #[error(
        "the response would exceed {limit} bytes; ask for fewer items or fewer payload fields \
         (data, body, schema, responseBody) per request"
    )]
    ResponseTooLarge { limit: usize },
    /// The database cannot be reached: nothing was stored; retrying is safe.
    #[error("the database is unavailable; nothing was stored, retry later")]
    Unavailable(#[source] sea_orm::DbErr),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
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
            Self::TooManySubscriptions(_) => "TOO_MANY_SUBSCRIPTIONS",
            Self::ResponseTooLarge { .. } => "RESPONSE_TOO_LARGE",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
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

/// Whether the database could not be reached, or could not store what it was
/// given (disk full, I/O error, a standby after failover): `UNAVAILABLE`,
/// worth retrying, as opposed to a statement it refused.
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
                Sqlx::Database(db) => db.code().is_some_and(|code| storage_failed(&code)),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether a database error code says the database could not store or
/// serve the statement right now (as opposed to refusing it): retrying
/// later can succeed, and nothing was committed.
///
/// PostgreSQL SQLSTATEs (five characters): classes 08 (connection), 53
/// (insufficient resources: disk full, out of memory, too many
/// connections), 57 (operator intervention: shutdown, crash recovery), 58
/// (system error: I/O), and 25006 (a read-only transaction: we reached a
/// standby, as after a failover). SQLite result codes (numbers; the primary
/// code is the low byte of the extended one): BUSY, LOCKED, READONLY,
/// IOERR, FULL, CANTOPEN, PROTOCOL.
pub fn storage_failed(code: &str) -> bool {
    // SQLSTATEs have five characters; SQLite's extended codes at most four
    // digits.
    if code.len() == 5 {
        return ["08", "53", "57", "58"]
            .iter()
            .any(|class| code.starts_with(class))
            || code == "25006";
    }
    const BUSY: i64 = 5;
    const LOCKED: i64 = 6;
    const READONLY: i64 = 8;
    const IOERR: i64 = 10;
    const FULL: i64 = 13;
    const CANTOPEN: i64 = 14;
    const PROTOCOL: i64 = 15;
    code.parse::<i64>().is_ok_and(|extended| {
        matches!(
            extended & 0xff,
            BUSY | LOCKED | READONLY | IOERR | FULL | CANTOPEN | PROTOCOL
        )
    })
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
            Self::TooManySubscriptions(m) => Self::TooManySubscriptions(m.clone()),
            Self::ResponseTooLarge { limit } => Self::ResponseTooLarge { limit: *limit },
            Self::Unavailable(db) => Self::Unavailable(db.clone()),
            Self::Internal(cause) => Self::Internal(anyhow::anyhow!("{cause:#}")),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// The innermost cause of an error: the one that says what actually happened
/// ("Connection refused", "file is not a database").
pub fn root_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message = cause.to_string();
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::storage_failed;

    #[test]
    fn storage_failures_are_told_from_refusals() {
        // PostgreSQL: disk full, I/O error, crash/shutdown, lost connection,
        // a standby after failover.
        for code in [
            "53100", "53200", "58030", "57P01", "57P03", "08006", "25006",
        ] {
            assert!(storage_failed(code), "{code}");
        }
        // Refusals: unique and check violations, bad encoding, syntax.
        for code in ["23505", "23514", "22021", "42601", "25001"] {
            assert!(!storage_failed(code), "{code}");
        }
        // SQLite: FULL, IOERR and its extended codes (IOERR_WRITE, FSYNC),
        // BUSY, READONLY.
        for code in ["13", "10", "778", "1034", "5", "8"] {
            assert!(storage_failed(code), "{code}");
        }
        // SQLite refusals: CONSTRAINT_UNIQUE, CONSTRAINT_CHECK, ERROR.
        for code in ["2067", "275", "1", "19"] {
            assert!(!storage_failed(code), "{code}");
        }
    }
}
