//! The one error type of the blob layer.

use std::error::Error as StdError;

use techpack_model::{ClassifiedError, ErrorKind, io_error_kind};

/// Everything a blob operation can fail with.
///
/// Variants are split so a caller can tell its own mistakes (a bad URL, a file too large or of
/// a type we do not store, a missing key) from failures of the storage backend; see
/// [`BlobError::is_caller_error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The storage URL could not be parsed or is missing a part (such as the S3 bucket).
    #[error("invalid blob storage URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The storage URL names a scheme this crate does not serve.
    #[error(
        "unsupported blob storage scheme {scheme:?}; accepted: file:///absolute/dir (or a plain path), memory://, s3://bucket[/prefix]"
    )]
    UnsupportedScheme {
        /// The scheme found in the URL.
        scheme: String,
    },

    /// A blob key that is not a valid object path (empty segments, `..`, control characters).
    #[error("invalid blob key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// Why it was refused.
        reason: String,
    },

    /// No blob is stored under the key.
    #[error("no blob stored under key {key:?}")]
    NotFound {
        /// The key looked up.
        key: String,
    },

    /// The upload is larger than the configured limit; nothing was stored.
    #[error(
        "blob is larger than the {limit}-byte limit; nothing was stored (raise `max_blob_size` in the blob store options to accept larger files)"
    )]
    TooLarge {
        /// The limit in bytes that was exceeded.
        limit: u64,
    },

    /// The content is of a type the store does not accept; nothing was stored.
    #[error(
        "content type {detected} is not accepted; nothing was stored (accepted: {})",
        allowed.join(", ")
    )]
    UnsupportedType {
        /// What the first bytes look like (`application/octet-stream` when unknown,
        /// `text/plain` for other text, `empty` for no bytes at all).
        detected: String,
        /// The MIME types the store is configured to accept.
        allowed: Vec<String>,
    },

    /// The caller's input stream failed while it was being read; nothing was stored.
    #[error("reading the upload failed; nothing was stored")]
    Source(#[source] Box<dyn StdError + Send + Sync + 'static>),

    /// Presigned URLs need a backend that can sign them (S3); this one cannot.
    #[error("presigned URLs are not available on the {backend} backend (only on s3://)")]
    PresignUnsupported {
        /// The backend in use.
        backend: &'static str,
    },

    /// Preparing a local storage directory failed.
    #[error("cannot prepare blob directory {path}")]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A local file to be stored could not be read; nothing was stored.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A blob removed during its upload could not be stored again with the same content: its
    /// source changed meanwhile.
    #[error(
        "the blob {key} was removed during its upload and its source no longer has the same content; upload it again"
    )]
    ContentChanged {
        /// The key the row records.
        key: String,
    },

    /// The storage backend failed (network, permissions, disk, misconfiguration). Shown with
    /// its root cause and, for the common cases, what to do.
    #[error("blob storage backend error: {}", describe_backend(.0))]
    Backend(#[source] object_store::Error),
}

impl BlobError {
    /// True when the caller can fix the request (bad input, missing key); false for failures of
    /// the backend or of the server's own configuration. A server maps the first to 4xx, the
    /// second to 5xx.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            Self::InvalidKey { .. }
                | Self::NotFound { .. }
                | Self::TooLarge { .. }
                | Self::UnsupportedType { .. }
                | Self::Source(_)
                | Self::Read { .. }
                | Self::ContentChanged { .. }
        )
    }

    /// The kind of failure (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidUrl { .. } | Self::UnsupportedScheme { .. } => ErrorKind::Misconfigured,
            Self::InvalidKey { .. } | Self::UnsupportedType { .. } | Self::Source(_) => {
                ErrorKind::InvalidInput
            }
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::TooLarge { .. } => ErrorKind::TooLarge,
            Self::PresignUnsupported { .. } => ErrorKind::Misconfigured,
            Self::Io { source, .. } => match io_error_kind(source) {
                ErrorKind::NotFound | ErrorKind::InvalidInput => ErrorKind::Misconfigured,
                other => other,
            },
            Self::Read { source, .. } => match io_error_kind(source) {
                ErrorKind::Internal => ErrorKind::InvalidInput,
                other => other,
            },
            Self::ContentChanged { .. } => ErrorKind::Conflict,
            Self::Backend(error) => backend_error_kind(error),
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl { .. } | Self::UnsupportedScheme { .. } => "config_error",
            Self::InvalidKey { .. } => "invalid_input",
            Self::NotFound { .. } => "blob_not_found",
            Self::TooLarge { .. } => "too_large",
            Self::UnsupportedType { .. } => "unsupported_type",
            Self::Source(_) => "invalid_input",
            Self::PresignUnsupported { .. } => "config_error",
            Self::Read { .. } => match self.kind() {
                ErrorKind::NotFound => "not_found",
                ErrorKind::StorageFull => "storage_full",
                _ => "invalid_input",
            },
            Self::ContentChanged { .. } => "conflict",
            Self::Io { .. } | Self::Backend(_) => match self.kind() {
                ErrorKind::StorageFull => "storage_full",
                ErrorKind::Misconfigured => "config_error",
                ErrorKind::Unavailable => "blob_storage_unavailable",
                _ => "blob_storage_error",
            },
        }
    }

    /// Maps a backend error, turning "not found" into [`BlobError::NotFound`] for `key`.
    pub(crate) fn from_store(key: &str, err: object_store::Error) -> Self {
        match err {
            object_store::Error::NotFound { .. } => Self::NotFound {
                key: key.to_owned(),
            },
            other => Self::Backend(other),
        }
    }
}

/// Why a signed blob token was refused. Each case is distinct so logs and metrics can tell an
/// expired link (normal) from a forged one (suspicious).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The token is not of the `payload.signature` form or its parts do not decode.
    #[error("malformed signed URL token")]
    Malformed,
    /// The token was minted with a secret this server does not hold.
    #[error("signed URL was issued with a different secret")]
    ForeignSecret,
    /// The signature does not match the payload: the token was altered.
    #[error("signed URL signature does not match its contents")]
    Tampered,
    /// The token was valid but its expiry time has passed.
    #[error("signed URL expired at {expired_at}")]
    Expired {
        /// When it expired.
        expired_at: chrono::DateTime<chrono::Utc>,
    },
    /// Signing refused: the key is not under the owner's prefix, so the token would grant
    /// another user's blob.
    #[error("blob key {key:?} does not belong to owner {owner}")]
    KeyNotOwned {
        /// The key.
        key: String,
        /// The owner it was to be signed for.
        owner: uuid::Uuid,
    },
    /// The server secret is too short to be safe.
    #[error("URL signing secret must be at least {min} bytes, got {got}")]
    WeakSecret {
        /// Minimum length.
        min: usize,
        /// Length given.
        got: usize,
    },
}

impl ClassifiedError for BlobError {
    fn kind(&self) -> ErrorKind {
        BlobError::kind(self)
    }

    fn code(&self) -> &'static str {
        BlobError::code(self)
    }
}

/// What a failure of the object store means: refused credentials or a bad setting is the
/// operator's to fix; an operating-system error says what it is (a full disk); anything else
/// from a remote store (a refused connection, a timeout, a 5xx) may pass.
/// The common causes of a backend failure, recognised in its chain, with what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KnownCause {
    MissingBucket,
    PlainHttp,
    Refused,
    NoCredentials,
}

impl KnownCause {
    fn advice(self) -> &'static str {
        match self {
            KnownCause::MissingBucket => {
                "the bucket does not exist: create it, or fix the bucket in the storage URL (s3://BUCKET/prefix)"
            }
            KnownCause::PlainHttp => {
                "the S3 endpoint is plain http://: set AWS_ALLOW_HTTP=true to allow it, or use an https:// endpoint"
            }
            KnownCause::Refused => {
                "the S3 endpoint refused the connection: is it running, and is AWS_ENDPOINT_URL right?"
            }
            KnownCause::NoCredentials => {
                "no S3 credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (AWS_PROFILE and ~/.aws files are not read)"
            }
        }
    }
}

/// Every error of the chain, outermost first.
fn chain(error: &object_store::Error) -> Vec<&(dyn StdError + 'static)> {
    let mut causes: Vec<&(dyn StdError + 'static)> = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(cause) = current {
        causes.push(cause);
        current = cause.source();
    }
    causes
}

fn known_cause(error: &object_store::Error) -> Option<KnownCause> {
    for cause in chain(error) {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Some(KnownCause::Refused);
        }
        let text = cause.to_string();
        if text.contains("NoSuchBucket") {
            return Some(KnownCause::MissingBucket);
        }
        if text.contains("URL scheme is not allowed") {
            return Some(KnownCause::PlainHttp);
        }
        if text.contains("Connection refused") {
            return Some(KnownCause::Refused);
        }
        if text.contains("169.254.169.254") || text.contains("instance metadata") {
            return Some(KnownCause::NoCredentials);
        }
    }
    None
}

/// The backend's message, its root cause when the message does not already say it, and the
/// advice for a known cause: "what happened: why; what to do", each said once.
fn describe_backend(error: &object_store::Error) -> String {
    let mut text = error.to_string();
    let causes = chain(error);
    if let Some(root) = causes.iter().skip(1).last() {
        let root = root.to_string();
        if !root.is_empty() && !text.contains(&root) {
            text.push_str(": ");
            text.push_str(&root);
        }
    }
    if let Some(cause) = known_cause(error) {
        text.push_str("; ");
        text.push_str(cause.advice());
    }
    text
}

fn backend_error_kind(error: &object_store::Error) -> ErrorKind {
    match known_cause(error) {
        Some(KnownCause::MissingBucket | KnownCause::PlainHttp | KnownCause::NoCredentials) => {
            return ErrorKind::Misconfigured;
        }
        Some(KnownCause::Refused) => return ErrorKind::Unavailable,
        None => {}
    }
    use object_store::Error as E;
    match error {
        E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::UnknownConfigurationKey { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. } => ErrorKind::Misconfigured,
        E::InvalidPath { .. } => ErrorKind::InvalidInput,
        E::NotFound { .. } => ErrorKind::NotFound,
        E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. } => {
            ErrorKind::Conflict
        }
        _ => {
            let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
            while let Some(current) = cause {
                if let Some(io) = current.downcast_ref::<std::io::Error>() {
                    return match io_error_kind(io) {
                        ErrorKind::Internal => ErrorKind::Unavailable,
                        other => other,
                    };
                }
                if current.to_string().contains("NoSuchBucket") {
                    return ErrorKind::Misconfigured;
                }
                cause = current.source();
            }
            ErrorKind::Unavailable
        }
    }
}
