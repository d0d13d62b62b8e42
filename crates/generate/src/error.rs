//! Provider errors: the caller's fault (bad input) kept apart from the provider's, and the
//! provider's failures that may pass (an outage, a rate limit) kept apart from those that will
//! not (a refused key, an exhausted quota), so that nothing above the provider retries what
//! cannot succeed.

use std::time::Duration;

use techpack_model::{ClassifiedError, ErrorKind};

/// Why a generation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenerateError {
    /// The photo cannot be used: not an image, truncated, too large, unsupported. Not retried.
    #[error("bad input: {0}")]
    BadInput(String),
    /// The provider kept asking us to slow down until the provider's retries ran out.
    #[error("rate limited by the provider{}", retry_after.map(|d| format!(" (retry after {} ms)", d.as_millis())).unwrap_or_default())]
    RateLimited {
        /// How long the provider asked us to wait the last time.
        retry_after: Option<Duration>,
    },
    /// The provider asked for a wait longer than the configured ceiling (or than the step has
    /// left): the step fails now instead of holding its slot, and says when to try again.
    #[error(
        "the provider asked to wait {} s before trying again, more than the {} s this step may wait; try again after {until}",
        wait.as_secs(),
        ceiling.as_secs()
    )]
    RetryLater {
        /// The wait the provider asked for.
        wait: Duration,
        /// The longest wait allowed.
        ceiling: Duration,
        /// When trying again makes sense, as an HTTP date (UTC).
        until: String,
    },
    /// No answer within the time limit.
    #[error("the provider did not answer within {} ms", .0.as_millis())]
    TimedOut(Duration),
    /// The step's overall deadline passed while the provider was being retried.
    #[error("the provider did not succeed within the step's deadline of {} s ({calls} calls; last: {last})", deadline.as_secs())]
    DeadlineExceeded {
        /// The deadline of one step.
        deadline: Duration,
        /// HTTP calls made.
        calls: u32,
        /// The last failure.
        last: String,
    },
    /// The provider failed in a way that may pass (5xx, a dropped connection …).
    #[error("provider error{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Upstream {
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// What the provider said.
        message: String,
    },
    /// The provider refused the request for a reason that trying again cannot change: a
    /// refused key, a missing model or deployment, an exhausted quota, a request it rejects.
    #[error("{}: HTTP {status} from {url}: {message}", reason.describe())]
    Refused {
        /// What kind of refusal it is.
        reason: Refusal,
        /// The HTTP status.
        status: u16,
        /// The method and URL that was called (no secret is ever part of it).
        url: String,
        /// What the provider said.
        message: String,
    },
    /// The model declined to answer (a safety refusal): the same photo will be declined again.
    #[error("the model refused: {0}")]
    ModelRefused(String),
    /// The provider answered, but not with something we can use.
    #[error("invalid answer from the provider: {0}")]
    InvalidAnswer(String),
}

/// The kinds of [`GenerateError::Refused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// 401: the API key is wrong, expired or missing.
    Unauthorized,
    /// 403: the key may not use this model, deployment or region.
    Forbidden,
    /// 404: no such endpoint, model or deployment (usually a wrong base URL or model name).
    NotFound,
    /// The account's quota or credit is used up (`insufficient_quota`).
    QuotaExceeded,
    /// Any other 4xx: the provider rejects the request as it is.
    Rejected,
}

impl Refusal {
    /// The refusal for an HTTP status, given the provider's error code.
    pub fn of(status: u16, code: Option<&str>) -> Self {
        if code == Some("insufficient_quota") {
            return Refusal::QuotaExceeded;
        }
        match status {
            401 => Refusal::Unauthorized,
            403 => Refusal::Forbidden,
            404 => Refusal::NotFound,
            _ => Refusal::Rejected,
        }
    }

    /// What it means for the operator, as the start of the message.
    fn describe(self) -> &'static str {
        match self {
            Refusal::Unauthorized => {
                "the provider refused the API key (check openai.api_key / OPENAI_API_KEY)"
            }
            Refusal::Forbidden => "the API key may not use this model or resource",
            Refusal::NotFound => {
                "no such endpoint, model or deployment (check openai.base_url and the model names)"
            }
            Refusal::QuotaExceeded => "the provider account's quota is exhausted",
            Refusal::Rejected => "the provider rejected the request",
        }
    }

    /// A stable machine-readable code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "provider_unauthorized",
            Refusal::Forbidden => "provider_forbidden",
            Refusal::NotFound => "provider_not_found",
            Refusal::QuotaExceeded => "provider_quota_exceeded",
            Refusal::Rejected => "provider_rejected",
        }
    }
}

impl GenerateError {
    /// Whether trying again later may succeed. Refusals, refused photos and unusable answers
    /// will not: nothing retries them (not the provider, not the pipeline, not the job queue).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            GenerateError::RateLimited { .. }
                | GenerateError::RetryLater { .. }
                | GenerateError::TimedOut(_)
                | GenerateError::DeadlineExceeded { .. }
                | GenerateError::Upstream { .. }
        )
    }

    /// How long to wait before trying again, when the provider said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GenerateError::RateLimited { retry_after } => *retry_after,
            GenerateError::RetryLater { wait, .. } => Some(*wait),
            _ => None,
        }
    }

    /// The kind of failure (see [`ErrorKind`]): a bad photo is the caller's to fix, a refused
    /// key or a wrong endpoint is the operator's, a provider that is down or slow may recover,
    /// an unusable answer is the provider's fault.
    pub fn kind(&self) -> ErrorKind {
        match self {
            GenerateError::BadInput(_) | GenerateError::ModelRefused(_) => ErrorKind::InvalidInput,
            GenerateError::Refused { reason, .. } => match reason {
                Refusal::Unauthorized
                | Refusal::Forbidden
                | Refusal::NotFound
                | Refusal::QuotaExceeded => ErrorKind::Misconfigured,
                Refusal::Rejected => ErrorKind::InvalidInput,
            },
            GenerateError::RateLimited { .. }
            | GenerateError::RetryLater { .. }
            | GenerateError::TimedOut(_)
            | GenerateError::DeadlineExceeded { .. }
            | GenerateError::Upstream { .. } => ErrorKind::Unavailable,
            GenerateError::InvalidAnswer(_) => ErrorKind::Internal,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            GenerateError::BadInput(_) => "invalid_input",
            GenerateError::RateLimited { .. } | GenerateError::RetryLater { .. } => "rate_limited",
            GenerateError::TimedOut(_) | GenerateError::DeadlineExceeded { .. } => "timed_out",
            GenerateError::Upstream { .. } => "upstream_error",
            GenerateError::Refused { reason, .. } => reason.code(),
            GenerateError::ModelRefused(_) => "provider_refused",
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
