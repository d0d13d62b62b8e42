//! `GET /blobs/{token}`: downloads through signed links. The token (minted by
//! `/api/v1/files/{id}/content-url`) is HMAC-signed with the server's URL-signing secret and
//! names the blob, its owner, its type and its expiry, so the route needs no other
//! authentication; a tampered, expired or foreign token is refused. Blobs are
//! content-addressed, so a key's bytes never change: the ETag is the key and the response may
//! be cached for as long as the link lives. `Range` requests are answered with `206`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::StreamExt;
use techpack_blobs::SignatureError;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// A blob through a signed link.
#[utoipa::path(
    get, path = "/blobs/{token}", tag = "files",
    params(("token" = String, Path, description = "The signed token of a content link"),
           ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`")),
    responses((status = 200, description = "The content", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 206, description = "The requested range", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 304, description = "Not modified (If-None-Match)"),
              (status = 401, description = "A tampered, expired or foreign link", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 416, description = "The range is outside the content", body = ErrorBody)),
)]
pub async fn download(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let granted = state.signer.verify(&token, Utc::now()).map_err(|error| {
        let code = match error {
            SignatureError::Expired { .. } => "link_expired",
            _ => "invalid_link",
        };
        ApiError::unauthenticated(
            code,
            format!("{error}: ask /api/v1/files/{{id}}/content-url for a new link"),
        )
    })?;
    let etag = format!("\"{}\"", granted.key.replace('/', "-"));
    let cache_secs = (granted.expires_at - Utc::now()).num_seconds().max(0);
    let mut base = HeaderMap::new();
    base.insert(header::ETAG, header_value(&etag));
    base.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    base.insert(
        header::CACHE_CONTROL,
        header_value(&format!("private, max-age={cache_secs}, immutable")),
    );
    base.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        })
    {
        return Ok((StatusCode::NOT_MODIFIED, base).into_response());
    }
    let mime = granted
        .mime
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    base.insert(header::CONTENT_TYPE, header_value(&mime));
    let blobs = state.app.blobs();
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    match range {
        None => {
            let download = blobs.get_stream(&granted.key).await?;
            base.insert(
                header::CONTENT_LENGTH,
                header_value(&download.meta.size.to_string()),
            );
            Ok((StatusCode::OK, base, body_of(download)).into_response())
        }
        Some(range) => {
            let size = blobs.head(&granted.key).await?.size;
            let Some((start, end)) = parse_range(&range, size) else {
                // 416 is the range protocol's own answer (with the size), not an error kind.
                let body = ErrorBody {
                    error: crate::error::ErrorDetail {
                        code: "range_not_satisfiable".into(),
                        message: format!(
                            "the range `{range}` is not inside the {size} bytes of the content; ask for one range, e.g. `bytes=0-1023`"
                        ),
                        request_id: None,
                    },
                };
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                    axum::Json(body),
                )
                    .into_response());
            };
            let download = blobs.get_range_stream(&granted.key, start..end + 1).await?;
            base.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {start}-{end}/{size}")),
            );
            base.insert(
                header::CONTENT_LENGTH,
                header_value(&(end + 1 - start).to_string()),
            );
            Ok((StatusCode::PARTIAL_CONTENT, base, body_of(download)).into_response())
        }
    }
}

fn body_of(download: techpack_blobs::BlobDownload) -> Body {
    Body::from_stream(
        download
            .stream
            .map(|chunk| chunk.map_err(std::io::Error::other)),
    )
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// One range of `bytes=a-b`, `bytes=a-` or `bytes=-n` within `size` bytes, as inclusive
/// bounds; `None` for anything else (several ranges, other units, outside the content).
fn parse_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 {
            return None;
        }
        (size.saturating_sub(suffix), size - 1)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            size - 1
        } else {
            last.parse::<u64>().ok()?.min(size - 1)
        };
        (start, end)
    };
    (start <= end && start < size).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
