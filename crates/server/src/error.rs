//! How an error leaves the server: one status from the application layer's mapping of its
//! kind, and a body `{"error": {"code", "message", "request_id"}}`. A server error (5xx other
//! than an outage) never shows its internals: the full chain goes to the log, under the
//! request's id, and the body says only that id.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use techpack_app::{AppError, ErrorReport};
use techpack_model::ErrorKind;

/// An error answered to an API caller.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The error's kind, which decides the status.
    pub kind: ErrorKind,
    /// The stable code clients branch on.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What an error body says.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The stable code, e.g. `not_found`, `invalid_token`, `too_large`.
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
    /// The id of the request, as in the `x-request-id` header and the server's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ApiError {
    /// An error of `kind` with a code and message of its own.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
        }
    }

    /// A bad request: the input breaks a rule.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, "invalid_input", message)
    }

    /// Nothing with that id is visible to the caller.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", message)
    }

    /// The caller did not prove who they are.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, code, message)
    }

    /// The caller may not do this.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, code, message)
    }

    /// The HTTP status of this error (the application layer's one mapping).
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(techpack_app::http_status(self.kind))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Whether the message may go to the caller: everything but server faults, whose text can
    /// name hosts, paths or SQL.
    fn is_public(&self) -> bool {
        !matches!(
            self.kind,
            ErrorKind::Internal | ErrorKind::Misconfigured | ErrorKind::Corrupt
        )
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        ApiError::from(ErrorReport::of(&error))
    }
}

impl From<ErrorReport> for ApiError {
    fn from(report: ErrorReport) -> Self {
        Self {
            kind: report.kind,
            code: report.code,
            message: report.message,
        }
    }
}

macro_rules! from_crate_error {
    ($($error:ty),+) => {
        $(impl From<$error> for ApiError {
            fn from(error: $error) -> Self {
                ApiError::from(ErrorReport::of(&error))
            }
        })+
    };
}

from_crate_error!(
    techpack_store::StoreError,
    techpack_blobs::BlobError,
    techpack_pipeline::PipelineError,
    techpack_housekeeping::HousekeepingError,
    techpack_model::ValidationError
);

impl ApiError {
    /// The body the caller sees: the message only for errors that are the caller's to act on.
    pub fn body(&self, request_id: Option<&str>) -> ErrorBody {
        let message = if self.is_public() {
            self.message.clone()
        } else {
            "the server could not complete this request; its log has the details under the request id".to_owned()
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message,
                request_id: request_id.map(str::to_owned),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body(None))).into_response();
        // The request middleware adds the request id and logs what stays private.
        response.extensions_mut().insert(self);
        response
    }
}
