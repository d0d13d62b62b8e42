//! The routes, one module per resource, and the router that puts them behind the shared
//! layers (request ids, logs, metrics, CORS, body limits, timeouts).

pub mod blobs;
pub mod collections;
pub mod files;
pub mod health;
pub mod jobs;
pub mod packs;
pub mod reports;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::routing::{get, post, put};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::openapi::ApiDoc;
use crate::state::AppState;

/// Every route of the server with its layers.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    // Requests that answer at once, bounded by the request timeout.
    let timed = Router::new()
        .route("/api/v1/packs", get(packs::list_packs))
        .route("/api/v1/packs/{collection}", get(packs::get_pack))
        .route(
            "/api/v1/packs/{collection}/retry-failed",
            post(packs::retry_failed),
        )
        .route("/api/v1/jobs", get(jobs::list_jobs))
        .route("/api/v1/jobs/{id}", get(jobs::get_job))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/api/v1/files", get(files::list_files))
        .route("/api/v1/files/{id}", get(files::get_file))
        .route(
            "/api/v1/files/{id}/versions",
            get(files::file_versions).post(files::create_version),
        )
        .route("/api/v1/files/{id}/restore", post(files::restore_file))
        .route("/api/v1/files/{id}/archive", post(files::archive_file))
        .route(
            "/api/v1/files/{id}/status",
            axum::routing::patch(files::set_file_status),
        )
        .route("/api/v1/files/{id}/content", get(files::content))
        .route("/api/v1/files/{id}/content-url", get(files::content_url))
        .route(
            "/api/v1/collections",
            get(collections::list_collections).post(collections::create_collection),
        )
        .route("/api/v1/collections/{id}", get(collections::get_collection))
        .route(
            "/api/v1/collections/{id}/files",
            post(collections::add_files),
        )
        .route(
            "/api/v1/collections/{id}/files/remove",
            post(collections::remove_files),
        )
        .route(
            "/api/v1/collections/{id}/progress",
            put(collections::set_progress),
        )
        .route(
            "/api/v1/collections/{id}/credits/recount",
            post(collections::recount_credits),
        )
        .route(
            "/api/v1/products/{product}/stats",
            get(reports::product_stats),
        )
        .route("/api/v1/batches/{id}/files", get(reports::batch_files))
        .route("/api/v1/report", get(reports::report))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ));
    // Uploads, downloads and event streams last as long as their bodies do.
    let streaming = Router::new()
        .route("/api/v1/packs", post(packs::create_pack))
        .route("/api/v1/files", post(files::create_file))
        .route("/api/v1/files/upload", post(files::upload_file))
        .route("/api/v1/jobs/{id}/events", get(jobs::job_events))
        .route("/blobs/{token}", get(blobs::download));
    let docs = SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi());
    Router::new()
        .merge(timed)
        .merge(streaming)
        .fallback(|| async {
            ApiError::not_found(
                "no such route: the API is under /api/v1, its document at /openapi.json",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::observability::track,
        ))
        .layer(DefaultBodyLimit::max(
            usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
        ))
        .layer(cors(&config.cors_origins))
        .with_state(state)
        .merge(docs)
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin.trim_end_matches('/')).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::RANGE,
            header::IF_NONE_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static(crate::observability::REQUEST_ID),
        ])
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::CONTENT_RANGE,
            HeaderName::from_static(crate::observability::REQUEST_ID),
        ])
}
