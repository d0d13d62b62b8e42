//! Reports: a product's generation statistics, a generation run's files, and the
//! specification's monitoring queries (the caller's own rows, or every user's for the service
//! role).

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use techpack_model::{MonitoringReport, ProductStats, TechFile};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// Who a product name belongs to.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ProductQuery {
    /// For the service role naming a product by name: its owner.
    pub user: Option<Uuid>,
}

/// Files, credits and counts of a product.
#[utoipa::path(
    get, path = "/api/v1/products/{product}/stats", tag = "reports",
    params(("product" = String, Path, description = "The product: a UUID or a name"), ProductQuery),
    responses((status = 200, body = ProductStats), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn product_stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(product): Path<String>,
    Query(query): Query<ProductQuery>,
) -> ApiResult<Json<ProductStats>> {
    let id = match Uuid::parse_str(product.trim()) {
        Ok(id) => id,
        Err(_) => techpack_app::products::product_id(caller.acting_user(query.user)?, &product),
    };
    Ok(Json(
        state
            .app
            .store()
            .get_product_generation_stats(caller.principal, id)
            .await?,
    ))
}

/// The files of a generation run, in creation order.
#[utoipa::path(
    get, path = "/api/v1/batches/{id}/files", tag = "reports",
    params(("id" = Uuid, Path, description = "The generation batch")),
    responses((status = 200, body = Vec<TechFile>), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn batch_files(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Vec<TechFile>>> {
    Ok(Json(
        state
            .app
            .store()
            .get_batch_files(caller.principal, id)
            .await?,
    ))
}

/// The monitoring queries: recent files, credits per product, collection completion — the
/// caller's own, or every user's for the service role.
#[utoipa::path(
    get, path = "/api/v1/report", tag = "reports",
    responses((status = 200, body = MonitoringReport), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn report(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<MonitoringReport>> {
    Ok(Json(
        state
            .app
            .store()
            .monitoring_report(caller.principal)
            .await?,
    ))
}
