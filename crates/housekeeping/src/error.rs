//! Errors of housekeeping operations.

use std::path::PathBuf;

use techpack_blobs::BlobError;
use techpack_model::{ClassifiedError, ErrorKind, io_error_kind};
use techpack_store::StoreError;

/// Why a housekeeping operation failed as a whole (per-blob failures of cleanup and fsck are
/// reported in their reports instead).
#[derive(Debug, thiserror::Error)]
pub enum HousekeepingError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A local file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The blob vanished after its row was written and could not be stored again with the
    /// same content (the source changed while uploading).
    #[error(
        "the blob {key} of file {file_id} was removed during the upload and its source no longer has the same content"
    )]
    SourceChanged {
        /// The key the row records.
        key: String,
        /// The row.
        file_id: uuid::Uuid,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

impl HousekeepingError {
    /// The kind of failure (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            HousekeepingError::Store(error) => error.kind(),
            HousekeepingError::Blob(error) => error.kind(),
            HousekeepingError::Read { source, .. } => match io_error_kind(source) {
                ErrorKind::Internal => ErrorKind::InvalidInput,
                other => other,
            },
            HousekeepingError::SourceChanged { .. } => ErrorKind::Conflict,
            HousekeepingError::InvalidOption(_) => ErrorKind::InvalidInput,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            HousekeepingError::Store(error) => error.code(),
            HousekeepingError::Blob(error) => error.code(),
            HousekeepingError::Read { .. } => match self.kind() {
                ErrorKind::NotFound => "not_found",
                _ => "invalid_input",
            },
            HousekeepingError::SourceChanged { .. } => "conflict",
            HousekeepingError::InvalidOption(_) => "invalid_input",
        }
    }
}

impl ClassifiedError for HousekeepingError {
    fn kind(&self) -> ErrorKind {
        HousekeepingError::kind(self)
    }

    fn code(&self) -> &'static str {
        HousekeepingError::code(self)
    }
}
