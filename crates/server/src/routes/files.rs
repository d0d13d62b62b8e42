//! `/api/v1/files`: the tech files — the latest version of each (filtered, paged by cursor),
//! one version, its history, restore, archive, status — uploads streamed to the blob store,
//! and content served through signed links.

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use futures::TryStreamExt;
use serde::Deserialize;
use techpack_housekeeping::upload::{UploadRequest, UploadSource, store_file};
use techpack_model::{
    ErrorKind, FileChanges, FileCursor, FileFilter, FileStatus, FileType, NewTechFile, Principal,
    TechFile, TechFileVersion,
};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::views::{ContentLink, FileListView};

/// The filters of `GET /api/v1/files`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FileListQuery {
    /// Only this product (a UUID, or for a user a product name).
    pub product: Option<String>,
    /// Only this revision.
    pub revision_id: Option<Uuid>,
    /// Only this type.
    pub file_type: Option<FileType>,
    /// Only this view.
    pub view_type: Option<String>,
    /// Only this status (`archived` lists archived files).
    pub status: Option<FileStatus>,
    /// Only this generation run.
    pub generation_batch_id: Option<Uuid>,
    /// Page size (default 50).
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// The latest version of each file, newest first, one page at a time.
#[utoipa::path(
    get, path = "/api/v1/files", tag = "files", params(FileListQuery),
    responses((status = 200, body = FileListView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_files(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<FileListQuery>,
) -> ApiResult<Json<FileListView>> {
    let filter = FileFilter {
        product_idea_id: product_filter(&caller, query.product.as_deref())?,
        revision_id: query.revision_id,
        file_type: query.file_type,
        view_type: query.view_type,
        status: query.status,
        generation_batch_id: query.generation_batch_id,
        limit: query.limit,
        after: query
            .cursor
            .as_deref()
            .map(FileCursor::from_token)
            .transpose()?,
    };
    let page = state
        .app
        .store()
        .get_latest_tech_files(caller.principal, &filter)
        .await?;
    Ok(Json(page.into()))
}

/// A product reference as a filter: a UUID as is; a name is the caller's own product.
pub(crate) fn product_filter(caller: &Caller, product: Option<&str>) -> ApiResult<Option<Uuid>> {
    match (product, caller.user_id()) {
        (None, _) => Ok(None),
        (Some(product), Some(user)) => Ok(Some(techpack_app::products::product_id(user, product))),
        (Some(product), None) => Uuid::parse_str(product.trim())
            .map(Some)
            .map_err(|_| ApiError::invalid("the service role names a product by its id (a UUID)")),
    }
}

/// A new file row, as the service layer's createTechFile takes it (the content, when it has
/// one, already stored: use `POST /api/v1/files/upload` to store content and row together).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFileRequest {
    /// The product (a UUID or a name).
    pub product: String,
    /// What the file holds.
    pub file_type: FileType,
    /// The revision.
    pub revision_id: Option<Uuid>,
    /// The base view (front, back …).
    pub view_type: Option<String>,
    /// The close-up shot name or sub-category.
    pub file_category: Option<String>,
    /// Structured result (a JSON object).
    pub analysis_data: Option<serde_json::Value>,
    /// Metadata (a JSON object).
    pub metadata: Option<serde_json::Value>,
    /// The model that made it.
    pub ai_model: Option<String>,
    /// The prompt or parameters.
    pub generation_prompt: Option<String>,
    /// The generation run.
    pub generation_batch_id: Option<Uuid>,
    /// A second create with the same key returns the first row.
    pub idempotency_key: Option<String>,
    /// Confidence 0..1.
    pub confidence_score: Option<f64>,
    /// Quality 0..1.
    pub quality_score: Option<f64>,
    /// Initial status (default `processing`).
    pub status: Option<FileStatus>,
    /// Why it failed, for a failed file.
    pub error_message: Option<String>,
    /// For the service role: the owner.
    pub user: Option<Uuid>,
}

/// Creates a file row (the first version of a new file). Credits are the store's to charge,
/// so a client cannot set them.
#[utoipa::path(
    post, path = "/api/v1/files", tag = "files",
    request_body = NewFileRequest,
    responses((status = 201, body = TechFile,
               headers(("Location" = String, description = "The file"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create_file(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewFileRequest>,
) -> ApiResult<Response> {
    let owner = caller.acting_user(body.user)?;
    let mut row = NewTechFile::new(
        owner,
        techpack_app::products::product_id(owner, &body.product),
        body.file_type,
    );
    row.revision_id = body.revision_id;
    row.view_type = body.view_type;
    row.file_category = body.file_category;
    if let Some(analysis) = body.analysis_data {
        row.analysis_data = analysis;
    }
    if let Some(metadata) = body.metadata {
        row.metadata = metadata;
    }
    row.ai_model = body.ai_model;
    row.generation_prompt = body.generation_prompt;
    row.generation_batch_id = body.generation_batch_id;
    row.idempotency_key = body.idempotency_key;
    row.confidence_score = body.confidence_score;
    row.quality_score = body.quality_score;
    if let Some(status) = body.status {
        row.status = status;
    }
    row.error_message = body.error_message;
    let file = state
        .app
        .store()
        .create_tech_file(caller.principal, row)
        .await?;
    Ok(created(&file))
}

fn created(file: &TechFile) -> Response {
    let location = format!("/api/v1/files/{}", file.id);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(file),
    )
        .into_response()
}

/// Where an upload goes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The product (a UUID or a name).
    pub product: String,
    /// What the file holds (default `base_view`).
    pub file_type: Option<FileType>,
    /// The view (front, back …).
    pub view_type: Option<String>,
    /// The close-up shot name or sub-category.
    pub file_category: Option<String>,
    /// The revision.
    pub revision_id: Option<Uuid>,
    /// For the service role: the owner.
    pub user: Option<Uuid>,
}

/// Stores a file: the request body is the content (PNG, JPEG, WebP, GIF, SVG, JSON or PDF),
/// streamed to the blob store, then a completed file row points at it.
#[utoipa::path(
    post, path = "/api/v1/files/upload", tag = "files", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes"),
    responses((status = 201, body = TechFile,
               headers(("Location" = String, description = "The file"))),
              (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn upload_file(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> ApiResult<Response> {
    let owner = caller.acting_user(query.user)?;
    let limit = state.app.blobs().options().max_blob_size;
    if let Some(length) = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        && length > limit
    {
        return Err(too_large(limit));
    }
    // Spooled to a temporary file so the body is never whole in memory, and so the blob can
    // be written again should cleanup remove it before the row exists.
    let spool = tempfile::NamedTempFile::new().map_err(|error| {
        ApiError::new(
            ErrorKind::Internal,
            "io_error",
            format!("a temporary file: {error}"),
        )
    })?;
    let mut file = tokio::fs::File::create(spool.path())
        .await
        .map_err(|error| {
            ApiError::new(
                ErrorKind::Internal,
                "io_error",
                format!("a temporary file: {error}"),
            )
        })?;
    let mut body = request.into_body().into_data_stream();
    let mut written: u64 = 0;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|error| ApiError::invalid(format!("reading the body: {error}")))?
    {
        written += chunk.len() as u64;
        if written > limit {
            return Err(too_large(limit));
        }
        file.write_all(&chunk).await.map_err(|error| {
            ApiError::new(
                techpack_model::io_error_kind(&error),
                "io_error",
                format!("spooling the upload: {error}"),
            )
        })?;
    }
    file.flush().await.ok();
    drop(file);
    if written == 0 {
        return Err(ApiError::invalid(
            "the body is empty: send the file's bytes",
        ));
    }
    let request = UploadRequest {
        owner,
        product_idea_id: techpack_app::products::product_id(owner, &query.product),
        revision_id: query.revision_id,
        file_type: query.file_type.unwrap_or(FileType::BaseView),
        view_type: query.view_type,
        file_category: query.file_category,
    };
    let source = UploadSource::File(spool.path().to_path_buf());
    let stored = store_file(
        state.app.store().as_ref(),
        state.app.blobs(),
        caller.principal,
        &source,
        request,
    )
    .await?;
    Ok(created(&stored))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorKind::TooLarge,
        "too_large",
        format!("the file is larger than the limit of {limit} bytes"),
    )
}

/// One file version, whole.
#[utoipa::path(
    get, path = "/api/v1/files/{id}", tag = "files",
    params(("id" = Uuid, Path, description = "A file version")),
    responses((status = 200, body = TechFile), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<TechFile>> {
    Ok(Json(
        state
            .app
            .store()
            .get_tech_file_by_id(caller.principal, id)
            .await?,
    ))
}

/// The versions of a file and their archived snapshots.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FileVersions {
    /// Every version of the lineage, oldest first.
    pub history: Vec<TechFile>,
    /// The snapshots the database kept of superseded versions.
    pub archived: Vec<TechFileVersion>,
}

/// Every version of the file, oldest first, with who changed it and why.
#[utoipa::path(
    get, path = "/api/v1/files/{id}/versions", tag = "files",
    params(("id" = Uuid, Path, description = "Any version of the file")),
    responses((status = 200, body = FileVersions), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn file_versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<FileVersions>> {
    let store = state.app.store();
    let history = store.get_file_history(caller.principal, id).await?;
    let archived = store.get_tech_file_versions(caller.principal, id).await?;
    Ok(Json(FileVersions { history, archived }))
}

/// Makes a new version of the file whose latest version is `id`: unset fields are carried
/// over from it (see the store's rules); the superseded version is archived.
#[utoipa::path(
    post, path = "/api/v1/files/{id}/versions", tag = "files",
    params(("id" = Uuid, Path, description = "The latest version of the file")),
    request_body = FileChanges,
    responses((status = 201, description = "The new latest version", body = TechFile,
               headers(("Location" = String, description = "The new version"))),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "`id` is not the latest version", body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(changes): Json<FileChanges>,
) -> ApiResult<Response> {
    let version = state
        .app
        .store()
        .create_tech_file_version(caller.principal, id, changes)
        .await?;
    Ok(created(&version))
}

/// Which version to restore.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The version number to make the latest again.
    pub version: i32,
}

/// Makes an earlier version's content the new latest version.
#[utoipa::path(
    post, path = "/api/v1/files/{id}/restore", tag = "files",
    params(("id" = Uuid, Path, description = "Any version of the file")),
    request_body = RestoreRequest,
    responses((status = 200, description = "The new latest version", body = TechFile),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn restore_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<RestoreRequest>,
) -> ApiResult<Json<TechFile>> {
    Ok(Json(
        state
            .app
            .store()
            .restore_tech_file_version(caller.principal, id, body.version)
            .await?,
    ))
}

/// Archives (soft-deletes) a file; its history is kept.
#[utoipa::path(
    post, path = "/api/v1/files/{id}/archive", tag = "files",
    params(("id" = Uuid, Path, description = "The file version")),
    responses((status = 200, body = TechFile), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn archive_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<TechFile>> {
    Ok(Json(
        state
            .app
            .store()
            .archive_tech_file(caller.principal, id)
            .await?,
    ))
}

/// A status change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// `processing`, `completed` or `failed`.
    pub status: FileStatus,
    /// Why it failed.
    pub error_message: Option<String>,
}

/// Sets a file's processing status.
#[utoipa::path(
    patch, path = "/api/v1/files/{id}/status", tag = "files",
    params(("id" = Uuid, Path, description = "The file version")),
    request_body = StatusRequest,
    responses((status = 200, body = TechFile), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn set_file_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<StatusRequest>,
) -> ApiResult<Json<TechFile>> {
    Ok(Json(
        state
            .app
            .store()
            .update_tech_file_status(caller.principal, id, body.status, body.error_message)
            .await?,
    ))
}

/// A signed link to a file's content, for a web app to put in an `<img>` or a download.
#[utoipa::path(
    get, path = "/api/v1/files/{id}/content-url", tag = "files",
    params(("id" = Uuid, Path, description = "The file version")),
    responses((status = 200, body = ContentLink), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn content_url(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ContentLink>> {
    Ok(Json(content_link(&state, caller.principal, id).await?))
}

/// The file's content: a redirect to a signed link.
#[utoipa::path(
    get, path = "/api/v1/files/{id}/content", tag = "files",
    params(("id" = Uuid, Path, description = "The file version")),
    responses((status = 307, description = "A redirect to the signed link",
               headers(("Location" = String, description = "The signed link"))),
              (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let link = content_link(&state, caller.principal, id).await?;
    Ok(Redirect::temporary(&link.url).into_response())
}

async fn content_link(state: &AppState, principal: Principal, id: Uuid) -> ApiResult<ContentLink> {
    let file = state.app.store().get_tech_file_by_id(principal, id).await?;
    let key = file.file_url.as_deref().ok_or_else(|| {
        ApiError::not_found(format!(
            "file {id} has no content (status {}){}",
            file.status,
            file.error_message
                .as_deref()
                .map(|why| format!(": {why}"))
                .unwrap_or_default()
        ))
    })?;
    let ttl = state.config.signed_url_ttl;
    let expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
    if matches!(
        state.app.blobs().backend(),
        techpack_blobs::Backend::S3 { .. }
    ) {
        let url = state.app.blobs().presigned_get_url(key, ttl).await?;
        return Ok(ContentLink {
            url: url.to_string(),
            expires_at,
        });
    }
    let token = state
        .signer
        .sign_with_type(key, file.user_id, file.mime_type.as_deref(), expires_at)
        .map_err(|error| ApiError::new(ErrorKind::Internal, "internal_error", error.to_string()))?;
    Ok(ContentLink {
        url: techpack_blobs::UrlSigner::signed_path("/blobs", &token),
        expires_at,
    })
}
