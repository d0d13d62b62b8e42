//! Errors of the application layer, and the one place where any error of any crate becomes a
//! kind, a stable code, an exit status and an HTTP status.

use std::error::Error as StdError;

use techpack_blobs::BlobError;
use techpack_generate::{GenerateError, ProviderSetupError};
use techpack_housekeeping::HousekeepingError;
use techpack_model::{ClassifiedError, ErrorKind, ValidationError, io_error_kind};
use techpack_pipeline::PipelineError;
use techpack_store::StoreError;

/// Why an operation of the application layer failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input is wrong: the message says what and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// Something the caller named does not exist (or is not theirs).
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the current state.
    #[error("{0}")]
    Conflict(String),
    /// A setting is wrong or missing.
    #[error("{0}")]
    Config(String),
    /// A local file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, e.g. "reading the front photo photos/front.jpg".
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Stored content is not what its rows recorded (fsck found problems).
    #[error("{0}")]
    Corrupt(String),
    /// The operation did part of its work and can be run again for the rest.
    #[error("{0}")]
    Incomplete(String),
    /// The person stopped the operation.
    #[error("{0}")]
    Cancelled(String),
    /// A job ended without the result the caller waited for.
    #[error("{message}")]
    Job {
        /// What happened and what to do.
        message: String,
        /// The kind: cancelled, failed for good, or queued for another attempt.
        kind: ErrorKind,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The orchestrator failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Cleanup, fsck or an upload failed.
    #[error(transparent)]
    Housekeeping(#[from] HousekeepingError),
    /// A provider could not be set up.
    #[error(transparent)]
    Provider(#[from] ProviderSetupError),
    /// A provider failed.
    #[error(transparent)]
    Generate(#[from] GenerateError),
}

/// The result of an application operation.
pub type AppResult<T> = Result<T, AppError>;

impl From<ValidationError> for AppError {
    fn from(error: ValidationError) -> Self {
        AppError::Store(StoreError::Invalid(error))
    }
}

impl ClassifiedError for AppError {
    fn kind(&self) -> ErrorKind {
        match self {
            AppError::Invalid(_) => ErrorKind::InvalidInput,
            AppError::NotFound(_) => ErrorKind::NotFound,
            AppError::Conflict(_) => ErrorKind::Conflict,
            AppError::Config(_) => ErrorKind::Misconfigured,
            AppError::Corrupt(_) => ErrorKind::Corrupt,
            AppError::Incomplete(_) => ErrorKind::Unavailable,
            AppError::Cancelled(_) => ErrorKind::Cancelled,
            AppError::Io { source, .. } => match io_error_kind(source) {
                ErrorKind::Internal => ErrorKind::InvalidInput,
                other => other,
            },
            AppError::Job { kind, .. } => *kind,
            AppError::Store(error) => error.kind(),
            AppError::Blob(error) => error.kind(),
            AppError::Pipeline(error) => error.kind(),
            AppError::Housekeeping(error) => error.kind(),
            AppError::Provider(error) => error.kind(),
            AppError::Generate(error) => error.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AppError::Invalid(_) => "invalid_input",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::Config(_) => "config_error",
            AppError::Corrupt(_) => "corrupt_data",
            AppError::Incomplete(_) => "incomplete",
            AppError::Cancelled(_) => "cancelled",
            AppError::Io { .. } => match self.kind() {
                ErrorKind::StorageFull => "storage_full",
                ErrorKind::NotFound => "not_found",
                ErrorKind::Misconfigured => "permission_denied",
                _ => "io_error",
            },
            AppError::Job { kind, .. } => match kind {
                ErrorKind::Cancelled => "job_cancelled",
                ErrorKind::Unavailable => "job_retrying",
                ErrorKind::Internal => "job_failed",
                // What the caller can act on keeps the code of its kind.
                other => other.as_str(),
            },
            AppError::Store(error) => error.code(),
            AppError::Blob(error) => error.code(),
            AppError::Pipeline(error) => error.code(),
            AppError::Housekeeping(error) => error.code(),
            AppError::Provider(error) => error.code(),
            AppError::Generate(error) => error.code(),
        }
    }
}

/// An error as a front end reports it: its kind, stable code and message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErrorReport {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// The stable code.
    pub code: &'static str,
    /// What went wrong and what to do, each cause once.
    pub message: String,
}

impl ErrorReport {
    /// Describes any error: the first error in its chain that knows its kind decides kind and
    /// code (an error of our own wrapped in context keeps its code); the message joins the
    /// chain's messages, dropping each one that an earlier one already contains.
    pub fn of(error: &(dyn StdError + 'static)) -> Self {
        let mut classified = None;
        let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
        while let Some(current) = cause {
            if classified.is_none() {
                classified = classify(current);
            }
            cause = current.source();
        }
        let (kind, code) = classified.unwrap_or((ErrorKind::Internal, "internal_error"));
        Self {
            kind,
            code,
            message: chain_message(error),
        }
    }

    /// Describes an `anyhow` error (a binary's error with its context).
    pub fn of_anyhow(error: &anyhow::Error) -> Self {
        Self::of(error.as_ref())
    }

    /// The process exit status: 2 for what the caller can fix (bad input, not found, a
    /// conflict, a wrong setting), 1 for anything else.
    pub fn exit_status(&self) -> u8 {
        exit_status(self.kind)
    }

    /// The HTTP status.
    pub fn http_status(&self) -> u16 {
        http_status(self.kind)
    }
}

/// The exit status of an error kind: 2 for the caller's mistakes, 1 otherwise.
pub fn exit_status(kind: ErrorKind) -> u8 {
    if kind.is_caller_error() { 2 } else { 1 }
}

/// The HTTP status of an error kind.
pub fn http_status(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::InvalidInput => 400,
        ErrorKind::Unauthenticated => 401,
        ErrorKind::Forbidden => 403,
        ErrorKind::NotFound => 404,
        ErrorKind::Conflict => 409,
        ErrorKind::TooLarge => 413,
        ErrorKind::Cancelled => 409,
        ErrorKind::Unavailable => 503,
        ErrorKind::StorageFull => 507,
        ErrorKind::Misconfigured | ErrorKind::Corrupt | ErrorKind::Internal => 500,
    }
}

/// The kind and code of an error of one of techpack's own types.
fn classify(error: &(dyn StdError + 'static)) -> Option<(ErrorKind, &'static str)> {
    fn of<E: ClassifiedError + 'static>(
        error: &(dyn StdError + 'static),
    ) -> Option<(ErrorKind, &'static str)> {
        error.downcast_ref::<E>().map(|e| (e.kind(), e.code()))
    }
    of::<AppError>(error)
        .or_else(|| of::<StoreError>(error))
        .or_else(|| of::<BlobError>(error))
        .or_else(|| of::<PipelineError>(error))
        .or_else(|| of::<HousekeepingError>(error))
        .or_else(|| of::<ProviderSetupError>(error))
        .or_else(|| of::<GenerateError>(error))
        .or_else(|| of::<ValidationError>(error))
        .or_else(|| {
            error
                .downcast_ref::<std::io::Error>()
                .map(|io| match io_error_kind(io) {
                    ErrorKind::StorageFull => (ErrorKind::StorageFull, "storage_full"),
                    ErrorKind::NotFound => (ErrorKind::NotFound, "not_found"),
                    ErrorKind::Misconfigured => (ErrorKind::Misconfigured, "permission_denied"),
                    kind => (kind, "io_error"),
                })
        })
}

/// The messages of an error's chain joined with ": ", each said once: a message that an
/// earlier one already contains (a wrapper that prints its cause) is dropped.
pub fn chain_message(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(current) = cause {
        let text = current.to_string();
        let text = text.trim();
        if !text.is_empty() && !parts.iter().any(|part| part.contains(text)) {
            parts.push(text.to_owned());
        }
        cause = current.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_code_of_the_error_it_wraps() {
        let error = anyhow::Error::new(StoreError::Conflict("lost a race".into()))
            .context("creating a version");
        let report = ErrorReport::of_anyhow(&error);
        assert_eq!(report.code, "conflict");
        assert_eq!(report.exit_status(), 2);
        assert_eq!(report.http_status(), 409);
        assert_eq!(report.message, "creating a version: conflict: lost a race");
    }

    #[test]
    fn a_cause_printed_by_its_wrapper_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let error = AppError::Io {
            what: "writing out.png".into(),
            source: io,
        };
        let report = ErrorReport::of(&error);
        assert_eq!(report.code, "storage_full");
        assert_eq!(report.exit_status(), 1);
        assert_eq!(report.http_status(), 507);
        assert_eq!(
            report.message.matches("no storage space").count(),
            1,
            "{}",
            report.message
        );
    }

    #[test]
    fn unknown_errors_are_internal() {
        let error = anyhow::anyhow!("boom");
        let report = ErrorReport::of_anyhow(&error);
        assert_eq!(
            (report.kind, report.code),
            (ErrorKind::Internal, "internal_error")
        );
        assert_eq!(report.http_status(), 500);
    }
}
