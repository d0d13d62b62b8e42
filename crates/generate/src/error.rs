//! Provider errors: the caller's fault (bad input) kept apart from the provider's.

use std::time::Duration;

use techpack_model::{ClassifiedError, ErrorKind};

/// Why a generation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenerateError {
    /// The photo cannot be used: not an image, truncated, too large, unsupported. Not retried.
    #[error("bad input: {0}")]
    BadInput(String),
    /// The provider asked us to slow down.
    #[error("rate limited by the provider{}", retry_after.map(|d| format!(" (retry after {} ms)", d.as_millis())).unwrap_or_default())]
    RateLimited {
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// No answer within the time limit.
    #[error("the provider did not answer within {} ms", .0.as_millis())]
    TimedOut(Duration),
    /// The provider failed (5xx, connection refused …).
    #[error("provider error{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Upstream {
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// What the provider said.
        message: String,
    },
    /// The provider answered, but not with something we can use.
    #[error("invalid answer from the provider: {0}")]
    InvalidAnswer(String),
}

impl GenerateError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            GenerateError::RateLimited { .. }
                | GenerateError::TimedOut(_)
                | GenerateError::Upstream { .. }
        )
    }

    /// The kind of failure (see [`ErrorKind`]): a bad photo is the caller's to fix, a provider
    /// that is down or slow may recover, an unusable answer is the provider's fault.
    pub fn kind(&self) -> ErrorKind {
        match self {
            GenerateError::BadInput(_) => ErrorKind::InvalidInput,
            GenerateError::RateLimited { .. }
            | GenerateError::TimedOut(_)
            | GenerateError::Upstream { .. } => ErrorKind::Unavailable,
            GenerateError::InvalidAnswer(_) => ErrorKind::Internal,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            GenerateError::BadInput(_) => "invalid_input",
            GenerateError::RateLimited { .. } => "rate_limited",
            GenerateError::TimedOut(_) => "timed_out",
            GenerateError::Upstream { .. } => "upstream_error",
            GenerateError::InvalidAnswer(_) => "invalid_answer",
        }
    }
}

impl ClassifiedError for GenerateError {
    fn kind(&self) -> ErrorKind {
        GenerateError::kind(self)
    }

    fn code(&self) -> &'static str {
        GenerateError::code(self)
    }
}
