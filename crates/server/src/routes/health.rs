//! Health and metrics for the platform that runs the server: `/healthz` (the process
//! answers), `/readyz` (the database and the blob store answer too) and `/metrics`
//! (Prometheus).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use techpack_model::{JobState, Principal};

use crate::state::AppState;
use crate::views::Readiness;

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The server can serve: the database and the blob store answer.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, description = "A dependency does not answer", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = match state.app.store().database_id().await {
        Ok(_) => "ok".to_owned(),
        Err(error) => {
            tracing::warn!(%error, "readiness: the database does not answer");
            error.code().to_owned()
        }
    };
    let blobs = match state.app.blobs().list_all(techpack_blobs::CLAIMS_DIR).await {
        Ok(_) => "ok".to_owned(),
        Err(error) => {
            tracing::warn!(%error, "readiness: the blob store does not answer");
            error.code().to_owned()
        }
    };
    let ready = database == "ok" && blobs == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            ready,
            database,
            blobs,
        }),
    )
}

/// Prometheus metrics: requests by route and status with latency histograms, packs submitted,
/// the process's limits on requests to the OpenAI-compatible provider, and from the database
/// (every user's, whichever process did the work): jobs by state, files made in the last 24
/// hours by type and status (one per step), and credits charged over the last 7 days.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // The limits are settings of the process: read at each scrape, so a scrape shows the
    // limiter every job of this process shares.
    if let Ok(limiter) = state.app.providers().openai_limiter() {
        metrics::gauge!("techpack_provider_in_flight_limit").set(limiter.in_flight_limit() as f64);
        if let Some(per_minute) = limiter.per_minute() {
            metrics::gauge!("techpack_provider_requests_per_minute_limit")
                .set(f64::from(per_minute));
        }
    }
    record_database_gauges(&state).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Sets the gauges read from the database. A database that does not answer leaves the last
/// values (and `/readyz` says why); the scrape still succeeds.
async fn record_database_gauges(state: &AppState) {
    let store = state.app.store();
    match store.count_jobs_by_state(Principal::Service).await {
        Ok(counts) => {
            // Every state, so a state that emptied shows 0 rather than its last count.
            for job_state in JobState::ALL {
                let count = counts
                    .iter()
                    .find(|(counted, _)| counted == job_state)
                    .map_or(0, |(_, count)| *count);
                metrics::gauge!("techpack_jobs", "state" => job_state.as_str()).set(count as f64);
            }
        }
        Err(error) => tracing::warn!(%error, "metrics: counting jobs"),
    }
    match store.monitoring_report(Principal::Service).await {
        Ok(report) => {
            for row in &report.recent_files {
                metrics::gauge!(
                    "techpack_files_last_24h",
                    "file_type" => row.file_type.clone(),
                    "status" => row.status.clone()
                )
                .set(row.count as f64);
            }
            let credits: i64 = report
                .credits_by_product
                .iter()
                .map(|row| row.total_credits)
                .sum();
            metrics::gauge!("techpack_credits_last_7d").set(credits as f64);
        }
        Err(error) => tracing::warn!(%error, "metrics: the monitoring report"),
    }
}
