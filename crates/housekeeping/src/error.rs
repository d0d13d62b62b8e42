//! Errors of housekeeping operations.

use techpack_blobs::BlobError;
use techpack_model::{ClassifiedError, ErrorKind};
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
    /// An option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The blob store is also written to by another database: cleanup would delete the blobs
    /// that database's rows need.
    #[error(
        "refusing to clean up: this blob store is also written to by database(s) {} (this one is {ours}), so cleanup would delete blobs their rows need. Give each database its own storage URL (TECHPACK_STORAGE_URL); if a database listed is gone for good, delete `{}/<its id>` from the blob store and run cleanup again",
        others.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        techpack_blobs::CLAIMS_DIR
    )]
    SharedBlobStore {
        /// This database.
        ours: uuid::Uuid,
        /// The others that claimed the store.
        others: Vec<uuid::Uuid>,
    },
}

impl HousekeepingError {
    /// The kind of failure (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            HousekeepingError::Store(error) => error.kind(),
            HousekeepingError::Blob(error) => error.kind(),
            HousekeepingError::InvalidOption(_) => ErrorKind::InvalidInput,
            HousekeepingError::SharedBlobStore { .. } => ErrorKind::Misconfigured,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            HousekeepingError::Store(error) => error.code(),
            HousekeepingError::Blob(error) => error.code(),
            HousekeepingError::InvalidOption(_) => "invalid_input",
            HousekeepingError::SharedBlobStore { .. } => "shared_blob_store",
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
