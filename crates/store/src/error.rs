//! Store errors: the caller's mistakes (not found, invalid, conflict, forbidden) apart from
//! ours (the database failed or is misconfigured).

use techpack_model::ValidationError;

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
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
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
    /// A stable machine-readable code, one per variant.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not_found",
            StoreError::Forbidden(_) => "forbidden",
            StoreError::Invalid(_) => "invalid_input",
            StoreError::Conflict(_) => "conflict",
            StoreError::Config(_) => "config_error",
            StoreError::Schema(_) => "schema_error",
            StoreError::Database(_) => "database_error",
            StoreError::Migration(_) => "migration_error",
            StoreError::Corrupt(_) => "corrupt_data",
            StoreError::LeaseLost(_) => "lease_lost",
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
