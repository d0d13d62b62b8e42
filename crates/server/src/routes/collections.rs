//! `/api/v1/collections`: groups of files (a tech pack is one), their files in order and by
//! section, and their progress and credits as the store keeps them.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use techpack_model::{
    Collection, CollectionItem, CollectionItemInput, CollectionProgress, CollectionType,
    CollectionWithFiles, NewCollection,
};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::routes::files::product_filter;
use crate::state::AppState;

/// The filters of `GET /api/v1/collections`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CollectionListQuery {
    /// Only this product (a UUID, or for a user a product name).
    pub product: Option<String>,
}

/// Collections, newest first.
#[utoipa::path(
    get, path = "/api/v1/collections", tag = "collections", params(CollectionListQuery),
    responses((status = 200, body = Vec<Collection>), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_collections(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<CollectionListQuery>,
) -> ApiResult<Json<Vec<Collection>>> {
    let product = product_filter(&caller, query.product.as_deref())?;
    Ok(Json(
        state
            .app
            .store()
            .list_collections(caller.principal, product)
            .await?,
    ))
}

/// A new collection.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionRequest {
    /// The product (a UUID or a name).
    pub product: String,
    /// Display name.
    pub name: String,
    /// Longer description.
    pub description: Option<String>,
    /// What it groups (default `tech_pack_v2`).
    pub collection_type: Option<CollectionType>,
    /// The generation run that fills it.
    pub generation_batch_id: Option<Uuid>,
    /// Metadata (a JSON object).
    pub metadata: Option<serde_json::Value>,
    /// For the service role: the owner.
    pub user: Option<Uuid>,
}

/// Creates a collection.
#[utoipa::path(
    post, path = "/api/v1/collections", tag = "collections",
    request_body = CollectionRequest,
    responses((status = 201, body = Collection), (status = 400, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn create_collection(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CollectionRequest>,
) -> ApiResult<Response> {
    let owner = caller.acting_user(body.user)?;
    let mut new = NewCollection::new(
        owner,
        techpack_app::products::product_id(owner, &body.product),
        body.name,
        body.collection_type.unwrap_or(CollectionType::TechPackV2),
    );
    new.description = body.description;
    new.generation_batch_id = body.generation_batch_id;
    if let Some(metadata) = body.metadata {
        new.metadata = metadata;
    }
    let collection = state
        .app
        .store()
        .create_tech_file_collection(caller.principal, new)
        .await?;
    let location = format!("/api/v1/collections/{}", collection.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(collection),
    )
        .into_response())
}

/// A collection with its files in display order.
#[utoipa::path(
    get, path = "/api/v1/collections/{id}", tag = "collections",
    params(("id" = Uuid, Path, description = "The collection")),
    responses((status = 200, body = CollectionWithFiles), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_collection(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<CollectionWithFiles>> {
    Ok(Json(
        state
            .app
            .store()
            .get_collection_with_files(caller.principal, id)
            .await?,
    ))
}

/// Files to add to a collection (or move within it).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddFilesRequest {
    /// The files, with their order and section.
    pub items: Vec<CollectionItemInput>,
}

/// Adds files to a collection, or moves them when already in, in one transaction.
#[utoipa::path(
    post, path = "/api/v1/collections/{id}/files", tag = "collections",
    params(("id" = Uuid, Path, description = "The collection")),
    request_body = AddFilesRequest,
    responses((status = 200, body = Vec<CollectionItem>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn add_files(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<AddFilesRequest>,
) -> ApiResult<Json<Vec<CollectionItem>>> {
    Ok(Json(
        state
            .app
            .store()
            .add_files_to_collection(caller.principal, id, body.items)
            .await?,
    ))
}

/// Files to take out of a collection.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveFilesRequest {
    /// The file versions to take out; the files themselves stay.
    pub file_ids: Vec<Uuid>,
}

/// Takes files out of a collection (the files stay); removing twice is harmless.
#[utoipa::path(
    post, path = "/api/v1/collections/{id}/files/remove", tag = "collections",
    params(("id" = Uuid, Path, description = "The collection")),
    request_body = RemoveFilesRequest,
    responses((status = 200, description = "The items removed", body = Vec<CollectionItem>), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn remove_files(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<RemoveFilesRequest>,
) -> ApiResult<Json<Vec<CollectionItem>>> {
    Ok(Json(
        state
            .app
            .store()
            .remove_files_from_collection(caller.principal, id, body.file_ids)
            .await?,
    ))
}

/// Sets a collection's progress and status; a final status stamps its completion time.
#[utoipa::path(
    put, path = "/api/v1/collections/{id}/progress", tag = "collections",
    params(("id" = Uuid, Path, description = "The collection")),
    request_body = CollectionProgress,
    responses((status = 200, body = Collection), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn set_progress(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<CollectionProgress>,
) -> ApiResult<Json<Collection>> {
    Ok(Json(
        state
            .app
            .store()
            .update_collection_progress(caller.principal, id, body)
            .await?,
    ))
}

/// Recounts a collection's credits from its files (the database also keeps them current).
#[utoipa::path(
    post, path = "/api/v1/collections/{id}/credits/recount", tag = "collections",
    params(("id" = Uuid, Path, description = "The collection")),
    responses((status = 200, body = Collection), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn recount_credits(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Collection>> {
    Ok(Json(
        state
            .app
            .store()
            .update_collection_credits(caller.principal, id)
            .await?,
    ))
}
