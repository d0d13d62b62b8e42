//! `/api/v1/jobs`: the durable generation jobs, their cancellation, and their live events.
//!
//! Events come from the job's row, so they work whichever process runs the job (this server's
//! worker or a `techpack worker` on another machine): an event is sent each time the row's
//! state or progress changes, its id is the row's `updated_at` in microseconds (increasing,
//! and the same for every reader), so a client reconnecting with `Last-Event-ID` gets only
//! what it has not seen. The stream ends with a `result` event once the job is over.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};
use techpack_model::{Job, JobFilter, JobProgress, JobState};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::views::JobView;

/// How often a followed job's row is read.
const EVENT_POLL: Duration = Duration::from_millis(200);

/// The filters of `GET /api/v1/jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct JobListQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this product (a UUID or, for a user, a product name).
    pub product: Option<String>,
    /// At most this many (default 50).
    pub limit: Option<i64>,
}

/// Jobs, newest first.
#[utoipa::path(
    get, path = "/api/v1/jobs", tag = "jobs", params(JobListQuery),
    responses((status = 200, body = Vec<JobView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<JobListQuery>,
) -> ApiResult<Json<Vec<JobView>>> {
    let product_idea_id = match (query.product.as_deref(), caller.user_id()) {
        (None, _) => None,
        (Some(product), Some(user)) => Some(techpack_app::products::product_id(user, product)),
        (Some(product), None) => Some(Uuid::parse_str(product.trim()).map_err(|_| {
            ApiError::invalid("the service role names a product by its id (a UUID)")
        })?),
    };
    let filter = JobFilter {
        state: query.state,
        product_idea_id,
        limit: query.limit,
    };
    let jobs = state
        .app
        .store()
        .list_jobs(caller.principal, &filter)
        .await?;
    Ok(Json(jobs.iter().map(JobView::from).collect()))
}

/// One job.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "The job")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<JobView>> {
    let job = state.app.store().get_job(caller.principal, id).await?;
    Ok(Json(JobView::from(&job)))
}

/// Cancels a job: a queued one at once, a running one at its next step boundary.
#[utoipa::path(
    post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = Uuid, Path, description = "The job")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody),
              (status = 409, description = "The job is already over", body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn cancel_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<JobView>> {
    let job = state.app.store().cancel_job(caller.principal, id).await?;
    Ok(Json(JobView::from(&job)))
}

/// The data of a `progress` event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobEventData {
    /// The job.
    pub job_id: Uuid,
    /// Its state.
    pub state: JobState,
    /// Its progress: steps done, failed and planned, credits, percentage.
    pub progress: JobProgress,
    /// The claims so far.
    pub attempts: i32,
    /// The worker running it.
    pub worker_id: Option<String>,
    /// Why the last attempt failed, when it did.
    pub last_error: Option<String>,
}

impl From<&Job> for JobEventData {
    fn from(job: &Job) -> Self {
        Self {
            job_id: job.id,
            state: job.state,
            progress: job.pack_progress(),
            attempts: job.attempts,
            worker_id: job.worker_id.clone(),
            last_error: job.last_error.clone(),
        }
    }
}

/// The job's live events (Server-Sent Events).
///
/// `progress` events (data: [`JobEventData`]) each time the job's state or progress changes,
/// then one `result` event (data: [`JobView`]) when it is over, and the stream ends. Reconnect
/// with `Last-Event-ID` to continue after the last event received.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = Uuid, Path, description = "The job"),
           ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received")),
    responses((status = 200, description = "An event stream of `progress` events (JobEventData) ending with a `result` event (JobView)", content_type = "text/event-stream", body = String),
              (status = 404, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn job_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let last_seen: Option<i64> = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID must be the id of an event of this stream")
                })?,
        ),
    };
    // The first read answers 404 for a job the caller cannot see, before the stream starts.
    let first = state.app.store().get_job(caller.principal, id).await?;
    let store = state.app.store().clone();
    let shutdown = state.shutdown.clone();
    let principal = caller.principal;
    let stream = async_stream(first, last_seen, move |id| {
        let store = store.clone();
        async move { store.get_job(principal, id).await }
    });
    let stream = futures::StreamExt::take_until(stream, async move { shutdown.cancelled().await });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The events of a job from its rows: `read` reads the row again.
fn async_stream<R, F>(
    first: Job,
    last_seen: Option<i64>,
    read: R,
) -> impl Stream<Item = Result<Event, Infallible>>
where
    R: Fn(Uuid) -> F + Send + 'static,
    F: std::future::Future<Output = Result<Job, techpack_store::StoreError>> + Send,
{
    struct Follow<R> {
        job_id: Uuid,
        job: Option<Job>,
        last_id: Option<i64>,
        last_data: Option<JobEventData>,
        read: R,
        done: bool,
    }
    let start = Follow {
        job_id: first.id,
        job: Some(first),
        last_id: last_seen,
        last_data: None,
        read,
        done: false,
    };
    futures::stream::unfold(start, |mut follow| async move {
        if follow.done {
            return None;
        }
        loop {
            let job = match follow.job.take() {
                Some(job) => job,
                None => {
                    tokio::time::sleep(EVENT_POLL).await;
                    match (follow.read)(follow.job_id).await {
                        Ok(job) => job,
                        Err(error) => {
                            tracing::warn!(%error, "reading a followed job");
                            continue;
                        }
                    }
                }
            };
            let event_id = job.updated_at.timestamp_micros();
            let data = JobEventData::from(&job);
            let unseen = follow.last_id.is_none_or(|seen| event_id > seen);
            let changed = follow.last_data.as_ref() != Some(&data);
            follow.last_data = Some(data.clone());
            if job.state.is_terminal() {
                follow.done = true;
                let event = Event::default()
                    .event("result")
                    .id(event_id.to_string())
                    .json_data(JobView::from(&job))
                    .unwrap_or_else(|_| Event::default().event("result"));
                return Some((Ok(event), follow));
            }
            if unseen && changed {
                follow.last_id = Some(event_id);
                let event = Event::default()
                    .event("progress")
                    .id(event_id.to_string())
                    .json_data(&data)
                    .unwrap_or_else(|_| Event::default().event("progress"));
                return Some((Ok(event), follow));
            }
        }
    })
}
