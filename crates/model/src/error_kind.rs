//! What kind of failure an error is, shared by every crate: each crate's error type says its
//! kind and a stable code, and the application layer maps the kind to an exit status and an
//! HTTP status in one place.

use serde::{Deserialize, Serialize};

/// The kind of a failure: whose fault it is and whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The input breaks a rule (a bad value, a photo that is not an image): fix the input.
    InvalidInput,
    /// What was asked for does not exist, or belongs to someone else.
    NotFound,
    /// The request contradicts the current state (a superseded version, a finished job).
    Conflict,
    /// The caller may not do this.
    Forbidden,
    /// The caller did not prove who they are (no or a bad token).
    Unauthenticated,
    /// The input is larger than allowed.
    TooLarge,
    /// A setting is wrong or missing (a bad URL, no API key, a pending migration): the
    /// operator fixes the configuration.
    Misconfigured,
    /// A service techpack depends on is unreachable or failing for now (the database, the
    /// blob store, the model provider): trying again later may succeed.
    Unavailable,
    /// A disk or quota is full: free space, then try again.
    StorageFull,
    /// Stored data is not in the shape techpack wrote (a hand-edited row, a newer schema).
    Corrupt,
    /// The work was stopped on request.
    Cancelled,
    /// A bug or an unexpected failure inside techpack.
    Internal,
}

impl ErrorKind {
    /// Whether the caller (a user or an operator) can fix it by changing the request or the
    /// settings, as opposed to a failure of techpack or of a service it depends on.
    pub fn is_caller_error(self) -> bool {
        matches!(
            self,
            ErrorKind::InvalidInput
                | ErrorKind::NotFound
                | ErrorKind::Conflict
                | ErrorKind::Forbidden
                | ErrorKind::Unauthenticated
                | ErrorKind::TooLarge
                | ErrorKind::Misconfigured
        )
    }

    /// Whether the same request may succeed if made again later without any change.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::StorageFull)
    }

    /// The kind named `name` (its [`ErrorKind::as_str`]), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|kind| kind.as_str() == name)
    }

    /// Every kind.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::InvalidInput,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::Forbidden,
        ErrorKind::Unauthenticated,
        ErrorKind::TooLarge,
        ErrorKind::Misconfigured,
        ErrorKind::Unavailable,
        ErrorKind::StorageFull,
        ErrorKind::Corrupt,
        ErrorKind::Cancelled,
        ErrorKind::Internal,
    ];

    /// The kind's name, as used in codes and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Misconfigured => "config_error",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::StorageFull => "storage_full",
            ErrorKind::Corrupt => "corrupt_data",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal_error",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that knows its kind and its stable code. Every crate's error type implements it,
/// so a front end can report any error the same way.
pub trait ClassifiedError: std::error::Error {
    /// The kind of failure.
    fn kind(&self) -> ErrorKind;
    /// A stable machine-readable code (`not_found`, `invalid_input`, `database_unavailable`
    /// …): scripts and API clients match on it, so it never changes once published.
    fn code(&self) -> &'static str;
}

impl ClassifiedError for crate::ValidationError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }

    fn code(&self) -> &'static str {
        "invalid_input"
    }
}

/// The kind of an operating-system error: a full disk or quota, a missing file, a refused
/// permission, or an I/O failure.
pub fn io_error_kind(error: &std::io::Error) -> ErrorKind {
    use std::io::ErrorKind as Io;
    match error.kind() {
        Io::StorageFull | Io::QuotaExceeded | Io::FileTooLarge => ErrorKind::StorageFull,
        Io::NotFound => ErrorKind::NotFound,
        Io::PermissionDenied | Io::ReadOnlyFilesystem => ErrorKind::Misconfigured,
        Io::InvalidInput | Io::InvalidData | Io::InvalidFilename => ErrorKind::InvalidInput,
        Io::ConnectionRefused
        | Io::ConnectionReset
        | Io::ConnectionAborted
        | Io::NotConnected
        | Io::TimedOut
        | Io::HostUnreachable
        | Io::NetworkUnreachable
        | Io::NetworkDown
        | Io::BrokenPipe => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_storage_full_and_transient() {
        let error = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(io_error_kind(&error), ErrorKind::StorageFull);
        assert!(ErrorKind::StorageFull.is_transient());
        assert!(!ErrorKind::StorageFull.is_caller_error());
    }

    #[test]
    fn kinds_are_found_by_name() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::from_name("nonsense"), None);
    }

    #[test]
    fn caller_errors_are_not_transient() {
        for kind in [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Forbidden,
            ErrorKind::TooLarge,
            ErrorKind::Misconfigured,
        ] {
            assert!(kind.is_caller_error(), "{kind}");
            assert!(!kind.is_transient(), "{kind}");
        }
    }
}
