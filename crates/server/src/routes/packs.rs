//! `/api/v1/packs`: ask for a tech pack (photos uploaded with the request, or photos already
//! stored), list a product's packs, read one (the specification's getExistingTechPack), and
//! retry its failed steps. Requests go through the application layer exactly as the CLI's do,
//! so the same input reaches the same cache keys, lineages and jobs.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use techpack_app::{PackInput, RunOptions, Submitted, ViewUpload};
use techpack_model::{Collection, CollectionType, CollectionWithFiles, Principal};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::views::{JobView, SubmittedView};

/// The header a client sends to make a request safe to repeat.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A pack request in JSON, with photos already stored as files (`POST /api/v1/files`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackRequestJson {
    /// The product: a UUID, or a name that maps to a stable id per user.
    pub product: String,
    /// `auto` (detect from each photo, the default), `apparel`, `bags`, …
    pub category: Option<String>,
    /// The base views, in display order.
    pub views: Vec<StoredView>,
    /// The view whose photo is the pack's primary image (default: the first).
    pub primary_view: Option<String>,
    /// Close-ups per view (default: the `packs.closeups_per_view` setting).
    pub closeups_per_view: Option<usize>,
    /// The name of the pack's collection.
    pub collection_name: Option<String>,
    /// Make everything again as new versions, even when nothing changed.
    #[serde(default)]
    pub force: bool,
    /// The generator: `local` or `openai` (default: the `provider` setting).
    pub provider: Option<String>,
    /// Provider calls of the pack in flight at once.
    pub concurrency: Option<usize>,
    /// Runs of the job before it is given up.
    pub max_attempts: Option<i32>,
    /// For the service role: the user the pack is for.
    pub user: Option<Uuid>,
}

/// A base view whose photo is a stored file.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StoredView {
    /// The view: front, back, side …
    pub view: String,
    /// The stored file holding the photo.
    pub file_id: Uuid,
    /// A known real size for measurements, e.g. `height=70cm`.
    pub reference: Option<String>,
}

/// The filters of `GET /api/v1/packs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PackListQuery {
    /// Only this product (a UUID or a name); all products when absent.
    pub product: Option<String>,
    /// For the service role: the user whose product names are meant.
    pub user: Option<Uuid>,
}

/// Options of a retry.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// The generator (default: the `provider` setting).
    pub provider: Option<String>,
    /// Provider calls in flight at once.
    pub concurrency: Option<usize>,
    /// Runs of the job before it is given up.
    pub max_attempts: Option<i32>,
}

/// Asks for a tech pack.
///
/// Either `multipart/form-data` — text fields `product`, `category` and the options, one file
/// part per view named by the view (`front`, `back` …), and `reference.<view>` for a view's
/// known size — or JSON naming stored photos. The job is queued and run by a worker (this
/// server's own unless started with `--workers 0`); follow it at `events`. The same
/// `Idempotency-Key` (or an identical request while the first is queued or running) answers
/// the same job and charges nothing again.
#[utoipa::path(
    post, path = "/api/v1/packs", tag = "packs",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to repeat: the same key answers the same job.")),
    request_body(content(
        (PackRequestJson = "application/json"),
        (PackUploadForm = "multipart/form-data"),
    )),
    responses(
        (status = 202, description = "The job that makes the pack", body = SubmittedView,
         headers(("Location" = String, description = "The job"))),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or a bad access token", body = ErrorBody),
        (status = 404, description = "A named photo file is not the caller's", body = ErrorBody),
        (status = 413, description = "The body or a photo is too large", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_pack(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("multipart/form-data"));
    let (user, mut input) = if is_multipart {
        let multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
        pack_from_form(&state, &caller, multipart).await?
    } else {
        let Json(body) = Json::<PackRequestJson>::from_request(request, &state)
            .await
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
        pack_from_json(&state, &caller, body).await?
    };
    input.run.idempotency_key = idempotency_key(&headers)?;
    let submitted = state
        .app
        .submit_pack(user, &input, state.config.workers > 0)
        .await?;
    metrics::counter!("techpack_packs_submitted_total", "joined" => submitted.joined.to_string())
        .increment(1);
    Ok(accepted(submitted))
}

/// The multipart form of a pack request, for the OpenAPI document.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PackUploadForm {
    /// The product: a UUID or a name.
    product: String,
    /// `auto`, `apparel`, `bags` …
    category: Option<String>,
    /// The front photo (any view name works as a field name: `back`, `side` …).
    #[schema(value_type = Option<String>, format = Binary)]
    front: Option<Vec<u8>>,
    /// The back photo.
    #[schema(value_type = Option<String>, format = Binary)]
    back: Option<Vec<u8>>,
    /// Close-ups per view.
    closeups_per_view: Option<usize>,
    /// The pack collection's name.
    collection_name: Option<String>,
    /// The primary view.
    primary_view: Option<String>,
    /// `true` to make everything again.
    force: Option<bool>,
    /// `local` or `openai`.
    provider: Option<String>,
    /// Provider calls in flight at once.
    concurrency: Option<usize>,
    /// Runs before the job is given up.
    max_attempts: Option<i32>,
    /// For the service role: the user the pack is for.
    user: Option<Uuid>,
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get(IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(value) => {
            let key = value.to_str().map_err(|_| {
                ApiError::invalid("the Idempotency-Key header must be visible ASCII text")
            })?;
            let key = key.trim();
            if key.is_empty() || key.len() > techpack_model::MAX_JOB_KEY_BYTES {
                return Err(ApiError::invalid(format!(
                    "the Idempotency-Key header must be 1 to {} bytes",
                    techpack_model::MAX_JOB_KEY_BYTES
                )));
            }
            Ok(Some(key.to_owned()))
        }
    }
}

fn accepted(submitted: Submitted) -> Response {
    let job_id = submitted.job.id;
    let location = format!("/api/v1/jobs/{job_id}");
    let body = SubmittedView {
        job: JobView::from(&submitted.job),
        joined: submitted.joined,
        provider: submitted.provider,
        events: format!("{location}/events"),
    };
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn pack_from_form(
    state: &AppState,
    caller: &Caller,
    mut form: Multipart,
) -> ApiResult<(Uuid, PackInput)> {
    let mut input = PackInput::default();
    let mut named_user = None;
    let mut references: Vec<(String, String)> = Vec::new();
    let photo_limit = state.app.blobs().options().max_blob_size;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|error| ApiError::invalid(format!("reading the form: {}", error.body_text())))?
    {
        let name = field.name().unwrap_or_default().trim().to_owned();
        if field.file_name().is_some() {
            if name.is_empty() {
                return Err(ApiError::invalid(
                    "a photo part needs a name: the view it shows (front, back …)",
                ));
            }
            let mut photo = BytesMut::new();
            while let Some(chunk) = field.chunk().await.map_err(|error| {
                ApiError::invalid(format!("reading the `{name}` photo: {}", error.body_text()))
            })? {
                if (photo.len() + chunk.len()) as u64 > photo_limit {
                    return Err(ApiError::new(
                        techpack_model::ErrorKind::TooLarge,
                        "too_large",
                        format!("the `{name}` photo is larger than {photo_limit} bytes"),
                    ));
                }
                photo.extend_from_slice(&chunk);
            }
            input.views.push(ViewUpload {
                view: name,
                photo: photo.freeze(),
                reference: None,
            });
            continue;
        }
        let value = field.text().await.map_err(|error| {
            ApiError::invalid(format!("reading the `{name}` field: {}", error.body_text()))
        })?;
        let value = value.trim().to_owned();
        let number = |what: &str| -> ApiResult<usize> {
            value
                .parse()
                .map_err(|_| ApiError::invalid(format!("`{what}` must be a whole number")))
        };
        match name.as_str() {
            "product" => input.product = value.clone(),
            "category" => input.category = Some(value.clone()).filter(|text| !text.is_empty()),
            "primary_view" => input.primary_view = Some(value.clone()),
            "closeups_per_view" => input.closeups_per_view = Some(number(&name)?),
            "collection_name" => input.collection_name = Some(value.clone()),
            "force" => {
                input.force = match value.as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" | "" => false,
                    _ => return Err(ApiError::invalid("`force` must be true or false")),
                }
            }
            "provider" => input.run.provider = Some(value.clone()),
            "concurrency" => input.run.concurrency = Some(number(&name)?),
            "max_attempts" => {
                input.run.max_attempts = Some(
                    i32::try_from(number(&name)?)
                        .map_err(|_| ApiError::invalid("`max_attempts` is too large"))?,
                )
            }
            "user" => {
                named_user = Some(
                    Uuid::parse_str(&value)
                        .map_err(|_| ApiError::invalid("`user` must be a user id (UUID)"))?,
                )
            }
            other => match other.strip_prefix("reference.") {
                Some(view) => references.push((view.to_owned(), value.clone())),
                None => {
                    return Err(ApiError::invalid(format!(
                        "unknown form field `{other}`: photos are file parts named by their view; text fields are product, category, primary_view, closeups_per_view, collection_name, force, provider, concurrency, max_attempts, user and reference.<view>"
                    )));
                }
            },
        }
    }
    for (view, reference) in references {
        let upload = input
            .views
            .iter_mut()
            .find(|upload| upload.view == view)
            .ok_or_else(|| {
                ApiError::invalid(format!("`reference.{view}` names a view with no photo"))
            })?;
        upload.reference = Some(reference);
    }
    if input.views.is_empty() {
        return Err(ApiError::invalid(
            "a pack needs at least one photo: add a file part named by its view, e.g. `front`",
        ));
    }
    Ok((caller.acting_user(named_user)?, input))
}

async fn pack_from_json(
    state: &AppState,
    caller: &Caller,
    body: PackRequestJson,
) -> ApiResult<(Uuid, PackInput)> {
    let user = caller.acting_user(body.user)?;
    if body.views.is_empty() {
        return Err(ApiError::invalid(
            "a pack needs at least one view: `views: [{\"view\": \"front\", \"file_id\": …}]`",
        ));
    }
    let mut views = Vec::with_capacity(body.views.len());
    for stored in body.views {
        let photo = stored_photo(state, caller.principal, stored.file_id).await?;
        views.push(ViewUpload {
            view: stored.view,
            photo,
            reference: stored.reference,
        });
    }
    Ok((
        user,
        PackInput {
            product: body.product,
            category: body.category,
            views,
            primary_view: body.primary_view,
            closeups_per_view: body.closeups_per_view,
            collection_name: body.collection_name,
            force: body.force,
            run: RunOptions {
                provider: body.provider,
                concurrency: body.concurrency,
                max_attempts: body.max_attempts,
                ..RunOptions::default()
            },
        },
    ))
}

async fn stored_photo(state: &AppState, principal: Principal, file_id: Uuid) -> ApiResult<Bytes> {
    let file = state
        .app
        .store()
        .get_tech_file_by_id(principal, file_id)
        .await?;
    let key = file.file_url.as_deref().ok_or_else(|| {
        ApiError::invalid(format!(
            "file {file_id} has no content yet: upload the photo with POST /api/v1/files"
        ))
    })?;
    Ok(state.app.blobs().get_bytes(key).await?)
}

/// A product's tech packs, newest first (every product's without `product`).
#[utoipa::path(
    get, path = "/api/v1/packs", tag = "packs", params(PackListQuery),
    responses((status = 200, body = Vec<Collection>), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_packs(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PackListQuery>,
) -> ApiResult<Json<Vec<Collection>>> {
    let product = match &query.product {
        Some(product) => {
            let owner = match caller.principal {
                Principal::User(id) => id,
                Principal::Service => caller.acting_user(query.user)?,
            };
            Some(techpack_app::products::product_id(owner, product))
        }
        None => None,
    };
    let packs = state
        .app
        .store()
        .list_collections(caller.principal, product)
        .await?
        .into_iter()
        .filter(|collection| collection.collection_type == CollectionType::TechPackV2)
        .collect();
    Ok(Json(packs))
}

/// One tech pack with its files in display order (getExistingTechPack).
#[utoipa::path(
    get, path = "/api/v1/packs/{collection}", tag = "packs",
    params(("collection" = Uuid, Path, description = "The pack's collection")),
    responses((status = 200, body = CollectionWithFiles), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_pack(
    State(state): State<AppState>,
    caller: Caller,
    Path(collection): Path<Uuid>,
) -> ApiResult<Json<CollectionWithFiles>> {
    let pack = state
        .app
        .store()
        .get_collection_with_files(caller.principal, collection)
        .await?;
    if pack.collection.collection_type != CollectionType::TechPackV2 {
        return Err(ApiError::not_found(format!(
            "collection {collection} is not a tech pack: read it at /api/v1/collections/{collection}"
        )));
    }
    Ok(Json(pack))
}

/// Queues a run of a pack's failed steps, in the pack's own batch.
#[utoipa::path(
    post, path = "/api/v1/packs/{collection}/retry-failed", tag = "packs",
    params(("collection" = Uuid, Path, description = "The pack's collection"),
           ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to repeat")),
    request_body(content = Option<RetryRequest>, content_type = "application/json"),
    responses((status = 202, body = SubmittedView), (status = 404, body = ErrorBody),
              (status = 409, description = "Nothing failed, or the pack is being made", body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn retry_failed(
    State(state): State<AppState>,
    caller: Caller,
    Path(collection): Path<Uuid>,
    headers: HeaderMap,
    body: Option<Json<RetryRequest>>,
) -> ApiResult<Response> {
    let options = body.map(|Json(body)| body).unwrap_or_default();
    let pack = state
        .app
        .store()
        .get_collection(caller.principal, collection)
        .await?;
    let run = RunOptions {
        provider: options.provider,
        concurrency: options.concurrency,
        max_attempts: options.max_attempts,
        idempotency_key: idempotency_key(&headers)?,
        ..RunOptions::default()
    };
    let submitted = state
        .app
        .submit_retry(pack.user_id, collection, &run, state.config.workers > 0)
        .await?;
    Ok(accepted(submitted))
}
