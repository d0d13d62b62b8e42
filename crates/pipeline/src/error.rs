//! The pipeline's errors. A provider failing one step is not among them: that step is recorded
//! as failed and the rest of the pack goes on. These stop a whole run or a read.

use techpack_blobs::BlobError;
use techpack_model::{ClassifiedError, ErrorKind, io_error_kind};
use techpack_store::StoreError;

/// Why a run, a read or an export of a tech pack could not go on.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The request itself is wrong (no views, a repeated view, a zero concurrency …): the
    /// caller's fault, nothing was written.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// What was asked for does not exist (or belongs to someone else).
    #[error("not found: {0}")]
    NotFound(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Stored data is not in the shape the pipeline wrote (a hand-edited row, a newer schema).
    #[error("unexpected stored data: {0}")]
    Corrupt(String),
    /// Writing an export to the local disk failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or folder being written.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A generation task panicked or was cancelled.
    #[error("a generation task stopped unexpectedly: {0}")]
    Task(String),
}

impl PipelineError {
    /// Whether the caller can fix it by changing the request.
    pub fn is_caller_error(&self) -> bool {
        match self {
            PipelineError::InvalidRequest(_) | PipelineError::NotFound(_) => true,
            PipelineError::Store(error) => matches!(
                error,
                StoreError::NotFound { .. } | StoreError::Invalid(_) | StoreError::Forbidden(_)
            ),
            PipelineError::Blob(error) => error.is_caller_error(),
            _ => false,
        }
    }

    /// The kind of failure (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            PipelineError::InvalidRequest(_) => ErrorKind::InvalidInput,
            PipelineError::NotFound(_) => ErrorKind::NotFound,
            PipelineError::Store(error) => error.kind(),
            PipelineError::Blob(error) => error.kind(),
            PipelineError::Corrupt(_) => ErrorKind::Corrupt,
            PipelineError::Io { source, .. } => io_error_kind(source),
            PipelineError::Task(_) => ErrorKind::Internal,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::InvalidRequest(_) => "invalid_input",
            PipelineError::NotFound(_) => "not_found",
            PipelineError::Store(error) => error.code(),
            PipelineError::Blob(error) => error.code(),
            PipelineError::Corrupt(_) => "corrupt_data",
            PipelineError::Io { .. } => match self.kind() {
                ErrorKind::StorageFull => "storage_full",
                _ => "io_error",
            },
            PipelineError::Task(_) => "internal_error",
        }
    }
}

impl ClassifiedError for PipelineError {
    fn kind(&self) -> ErrorKind {
        PipelineError::kind(self)
    }

    fn code(&self) -> &'static str {
        PipelineError::code(self)
    }
}

/// Results of the pipeline.
pub type PipelineResult<T> = Result<T, PipelineError>;
