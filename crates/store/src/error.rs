//! Store errors: the caller's mistakes (not found, invalid, conflict, forbidden) apart from
//! ours (the database failed or is misconfigured).

use techpack_model::{ClassifiedError, ErrorKind, ValidationError, io_error_kind};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist, or belongs to someone else: the two look the same to a user.
    #[error("{entity} {id} not found")]
    NotFound {
        /// What was looked for: "tech file", "collection", "version" …
        entity: &'static str,
        /// The id or key that was looked for.
        id: String,
    },
    /// A write that claims another user's ownership.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The input breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The write lost a race or contradicts the current state (e.g. versioning a superseded
    /// version): read again and retry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database URL or configuration is wrong.
    #[error("configuration error: {0}")]
    Config(String),
    /// The schema is missing or older than this build: run `techpack migrate`.
    #[error("schema error: {0}")]
    Schema(String),
    /// The database server cannot be reached (refused, no route, no answer): the message
    /// names the address and what to check.
    #[error("{0}")]
    Unreachable(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The database could not write because its disk, quota or file-size limit is full. What
    /// was committed before is intact; the write that failed left nothing.
    #[error(
        "the database could not write ({0}): its disk, quota or file-size limit is full; free space, then run the command again (everything stored before is intact)"
    )]
    Full(String),
    /// Migrations failed.
    #[error("migration error: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored document did not decode: the row and this build disagree.
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    /// A write of a job's run whose lease is no longer this worker's: another worker claimed
    /// the job (the lease expired), or the job was finished, given back or cancelled. The run
    /// must stop; its writes are refused so two workers never write one job's files.
    #[error("lease lost: {0}")]
    LeaseLost(String),
}

impl StoreError {
    /// A stable machine-readable code: one per variant, and for database failures one per
    /// cause a caller can act on (unreachable, full).
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not_found",
            StoreError::Forbidden(_) => "forbidden",
            StoreError::Invalid(_) => "invalid_input",
            StoreError::Conflict(_) => "conflict",
            StoreError::Config(_) => "config_error",
            StoreError::Schema(_) => "schema_error",
            StoreError::Unreachable(_) => "database_unavailable",
            StoreError::Database(error) => match database_error_kind(error) {
                ErrorKind::Unavailable => "database_unavailable",
                ErrorKind::StorageFull => "storage_full",
                _ => "database_error",
            },
            StoreError::Migration(_) => "migration_error",
            StoreError::Full(_) => "storage_full",
            StoreError::Corrupt(_) => "corrupt_data",
            StoreError::LeaseLost(_) => "lease_lost",
        }
    }

    /// The kind of failure (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound { .. } => ErrorKind::NotFound,
            StoreError::Forbidden(_) => ErrorKind::Forbidden,
            StoreError::Invalid(_) => ErrorKind::InvalidInput,
            StoreError::Conflict(_) => ErrorKind::Conflict,
            StoreError::Config(_) | StoreError::Schema(_) => ErrorKind::Misconfigured,
            StoreError::Unreachable(_) => ErrorKind::Unavailable,
            StoreError::Database(error) => database_error_kind(error),
            StoreError::Migration(error) => match error {
                sqlx::migrate::MigrateError::Execute(error)
                | sqlx::migrate::MigrateError::ExecuteMigration(error, _) => {
                    match database_error_kind(error) {
                        ErrorKind::Internal => ErrorKind::Misconfigured,
                        other => other,
                    }
                }
                _ => ErrorKind::Misconfigured,
            },
            StoreError::Full(_) => ErrorKind::StorageFull,
            StoreError::Corrupt(_) => ErrorKind::Corrupt,
            // The run must stop; the job is another worker's now.
            StoreError::LeaseLost(_) => ErrorKind::Conflict,
        }
    }

    pub(crate) fn not_found(entity: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound {
            entity,
            id: id.to_string(),
        }
    }
}

/// The result of every store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Maps a database error to the typed error it stands for. PostgreSQL raises our own SQLSTATEs
/// (`TP404`, `TP409`, `TP422`) from functions and triggers; SQLite triggers raise messages
/// prefixed `techpack:conflict:` or `techpack:invalid:`.
pub(crate) fn map_db_error(error: sqlx::Error) -> StoreError {
    let sqlx::Error::Database(db) = &error else {
        return match error {
            sqlx::Error::RowNotFound => StoreError::not_found("row", ""),
            other => StoreError::Database(other),
        };
    };
    let message = db.message().to_owned();
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    // SQLite: SQLITE_FULL, or SQLITE_IOERR_WRITE, which is what a write past a file-size limit
    // or quota gives; PostgreSQL: disk_full.
    if matches!(code.as_str(), "13" | "778" | "53100") {
        return StoreError::Full(format!("{message} (code {code})"));
    }
    if let Some(rest) = message.strip_prefix("techpack:conflict: ") {
        return StoreError::Conflict(rest.to_owned());
    }
    if let Some(rest) = message.strip_prefix("techpack:invalid: ") {
        return StoreError::Invalid(ValidationError::new("row", rest));
    }
    match code.as_str() {
        "TP404" => return StoreError::not_found("tech file", message),
        "TP409" | "40001" | "40P01" => return StoreError::Conflict(message),
        "TP422" => return StoreError::Invalid(ValidationError::new("row", message)),
        "42501" => {
            return StoreError::Forbidden(
                "the row belongs to another user (row level security refused the write)".into(),
            );
        }
        _ => {}
    }
    let constraint = db
        .constraint()
        .map(str::to_owned)
        .unwrap_or_else(|| message.clone());
    match db.kind() {
        sqlx::error::ErrorKind::UniqueViolation => StoreError::Conflict(format!(
            "another write got there first ({constraint}); read again and retry"
        )),
        sqlx::error::ErrorKind::ForeignKeyViolation => {
            StoreError::not_found("referenced row", constraint)
        }
        sqlx::error::ErrorKind::CheckViolation | sqlx::error::ErrorKind::NotNullViolation => {
            StoreError::Invalid(ValidationError::new(
                "row",
                format!("the database refused the row: {constraint}"),
            ))
        }
        _ => StoreError::Database(error),
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        map_db_error(error)
    }
}

impl ClassifiedError for StoreError {
    fn kind(&self) -> ErrorKind {
        StoreError::kind(self)
    }

    fn code(&self) -> &'static str {
        StoreError::code(self)
    }
}

/// What a database failure means for the caller: the server unreachable (connection refused,
/// reset, the pool timing out, the server shutting down) is transient; a full disk is
/// `StorageFull`; anything else is ours.
pub(crate) fn database_error_kind(error: &sqlx::Error) -> ErrorKind {
    match error {
        sqlx::Error::Io(io) => match io_error_kind(io) {
            ErrorKind::Internal => ErrorKind::Unavailable,
            other => other,
        },
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            ErrorKind::Unavailable
        }
        sqlx::Error::Tls(_) | sqlx::Error::Configuration(_) => ErrorKind::Misconfigured,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            match code.as_ref() {
                // SQLite: SQLITE_FULL, the database or its disk is full.
                "13" => ErrorKind::StorageFull,
                // SQLite: SQLITE_BUSY (5), SQLITE_LOCKED (6); PostgreSQL: serialization and
                // deadlock failures, a cancelled statement (timeouts), too many connections.
                "5" | "6" | "517" | "262" | "40001" | "40P01" | "57014" | "53300" => {
                    ErrorKind::Unavailable
                }
                // PostgreSQL: disk full, out of memory, insufficient resources.
                "53100" | "53200" | "53000" => ErrorKind::StorageFull,
                // PostgreSQL: admin shutdown, crash shutdown, cannot connect now.
                code if code.starts_with("57P") || code.starts_with("08") => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            }
        }
        _ => ErrorKind::Internal,
    }
}
