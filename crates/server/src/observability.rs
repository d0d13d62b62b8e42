//! What every request goes through on its way in and out: a request id (the caller's
//! `x-request-id` when it sends a usable one, else a new one) on the response and on every log
//! line of the request, a JSON log line per request, Prometheus counters and latency
//! histograms by route and status, a body-size check before any byte is read, and error
//! bodies for the answers that layers below the handlers give (timeouts, oversized bodies).

use std::sync::OnceLock;
use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use techpack_model::ErrorKind;
use tracing::Instrument;

use crate::error::ApiError;
use crate::state::AppState;

/// The header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// The process's Prometheus registry: one recorder per process, shared by every server in it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("the buckets are not empty");
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (a host process): render an empty registry.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// The middleware around every route.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().clone();
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, route = %route);
    let too_large = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .is_some_and(|length| length > state.config.max_body_bytes);
    let mut response = if too_large {
        let mut refused = ApiError::new(
            ErrorKind::TooLarge,
            "too_large",
            format!(
                "the request body is larger than the server's limit of {} bytes (server.max_body_bytes)",
                state.config.max_body_bytes
            ),
        )
        .into_response();
        // The body stays unread, so the connection cannot carry another request: say so, or
        // a client would reuse it and meet a reset.
        refused
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        refused
    } else {
        next.run(request).instrument(span.clone()).await
    };
    let status = response.status();
    response = with_error_body(response, &request_id).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let elapsed = started.elapsed();
    let labels = [
        ("route", route.clone()),
        ("method", method.to_string()),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("techpack_http_requests_total", &labels).increment(1);
    metrics::histogram!(
        "techpack_http_request_duration_seconds",
        &[("route", route), ("method", method.to_string())]
    )
    .record(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        )
    });
    response
}

/// Puts the request id into an error body and logs what a private error hid; gives the
/// errors that the framework answers below the handlers (a malformed path, query or JSON body,
/// a wrong method, a timeout) the same JSON body, keeping their status.
async fn with_error_body(response: Response, request_id: &str) -> Response {
    let status = response.status();
    if let Some(error) = response.extensions().get::<ApiError>().cloned() {
        if status.is_server_error() {
            tracing::error!(code = error.code, error = %error.message, "request failed");
        }
        return rebuild(response, status, error.body(Some(request_id)));
    }
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (code, fallback) = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
            ("invalid_input", "the request is malformed")
        }
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not take that method: see /openapi.json",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request took longer than the server allows (server.request_timeout_secs)",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "too_large",
            "the request body is larger than the server allows (server.max_body_bytes)",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body with the content type the route takes: see /openapi.json",
        ),
        _ if status.is_server_error() => (
            "internal_error",
            "the server could not complete this request",
        ),
        _ => ("http_error", "the request was refused"),
    };
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .ok()
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .filter(|text| !text.is_empty() && !status.is_server_error());
    let message = match text {
        Some(text) => format!("{text}; {fallback}"),
        None => fallback.to_owned(),
    };
    let body = crate::error::ErrorBody {
        error: crate::error::ErrorDetail {
            code: code.to_owned(),
            message,
            request_id: Some(request_id.to_owned()),
        },
    };
    rebuild(
        Response::from_parts(parts, axum::body::Body::empty()),
        status,
        body,
    )
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// The response with `body` as its JSON body, keeping its status and other headers.
fn rebuild(response: Response, status: StatusCode, body: crate::error::ErrorBody) -> Response {
    let (parts, _) = response.into_parts();
    let mut rebuilt = (status, Json(body)).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}
