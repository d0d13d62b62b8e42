//! `/api/v1/jobs`: the durable generation jobs, their cancellation, and their live events.
//!
//! Events come from the database, so they work whichever process runs the job (this server's
//! worker or a `techpack worker` on another machine): the runner records one row per step
//! started, finished or failed (and per run started and finished), numbered in order, and the
//! stream sends each once, with its number as the SSE id, so a client reconnecting with
//! `Last-Event-ID` gets only what it has not seen. A reader sleeps until the store wakes it
//! (PostgreSQL LISTEN/NOTIFY; on SQLite this process's writes), polling as a fallback.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};
use techpack_model::{Job, JobFilter, JobProgress, JobState, Principal};
use techpack_store::{JobEventWaker, TechFileStore};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::views::JobView;

/// How many recorded events one read of a followed job takes at most.
const EVENT_PAGE: i64 = 200;

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

/// The data of a `state` event: where the job is.
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
    /// Its owner asked to cancel it.
    pub cancel_requested: bool,
}

impl JobEventData {
    /// Whether `other` says something this one does not, progress aside (the step events
    /// carry the progress).
    fn differs_from(&self, other: &JobEventData) -> bool {
        (
            self.state,
            self.attempts,
            &self.worker_id,
            &self.last_error,
            self.cancel_requested,
        ) != (
            other.state,
            other.attempts,
            &other.worker_id,
            &other.last_error,
            other.cancel_requested,
        )
    }
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
            cancel_requested: job.cancel_requested,
        }
    }
}

/// The job's live events (Server-Sent Events).
///
/// - `state` (data: [`JobEventData`], no id): first, and whenever the job's state, attempt,
///   worker, error or cancellation changes, while it is not over;
/// - one event per step started, finished or failed and per run started and finished, named
///   like it (`started`, `step_started`, `step_finished`, `step_failed`, `finished`; data: a
///   [`JobEvent`](techpack_model::JobEvent) with the counts and credits so far), its id the event's number;
/// - `result` (data: [`JobView`], no id) once the job is over, and the stream ends.
///
/// Reconnect with `Last-Event-ID` (the last id received) to get only later events.
#[utoipa::path(
    get, path = "/api/v1/jobs/{id}/events", tag = "jobs",
    params(("id" = Uuid, Path, description = "The job"),
           ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received")),
    responses((status = 200, description = "An event stream: `state` events (JobEventData), one event per step start and end (JobEvent, named by its `event`), ending with a `result` event (JobView)", content_type = "text/event-stream", body = String),
              (status = 400, body = ErrorBody),
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
                .filter(|id: &i64| *id >= 0)
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID must be the id of an event of this stream")
                })?,
        ),
    };
    let store = state.app.store().clone();
    // Made before the first read: what is recorded after it wakes the stream.
    let waker = store.job_event_waker();
    // The first read answers 404 for a job the caller cannot see, before the stream starts.
    let first = store.get_job(caller.principal, id).await?;
    let follow = Follow {
        store,
        principal: caller.principal,
        job_id: id,
        waker,
        job: Some(first),
        last_id: last_seen,
        last_state: None,
        queue: VecDeque::new(),
        done: false,
    };
    let stream = futures::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok(event), follow))
    });
    let shutdown = state.shutdown.clone();
    let stream = futures::StreamExt::take_until(stream, async move { shutdown.cancelled().await });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// One client following one job.
struct Follow {
    store: Arc<dyn TechFileStore>,
    principal: Principal,
    job_id: Uuid,
    waker: JobEventWaker,
    /// The job as read, until its events are queued.
    job: Option<Job>,
    /// The id of the last recorded event sent (or the client saw).
    last_id: Option<i64>,
    /// The last `state` sent.
    last_state: Option<JobEventData>,
    /// Events to send before reading again.
    queue: VecDeque<Event>,
    /// The result is queued: nothing follows it.
    done: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            let job = match self.job.take() {
                Some(job) => job,
                None => {
                    self.waker.wait(self.job_id).await;
                    match self.store.get_job(self.principal, self.job_id).await {
                        Ok(job) => job,
                        Err(error) => {
                            tracing::warn!(job = %self.job_id, %error, "reading a followed job");
                            continue;
                        }
                    }
                }
            };
            self.queue_from(&job).await;
        }
    }

    /// Queues what `job` (just read) and the events recorded up to now say that was not sent:
    /// its state first, then the events (read after the row, so a job that was over when read
    /// has all its events), then the result when it is over.
    async fn queue_from(&mut self, job: &Job) {
        let over = job.state.is_terminal();
        let current = JobEventData::from(job);
        if !over
            && self
                .last_state
                .as_ref()
                .is_none_or(|sent| sent.differs_from(&current))
        {
            self.queue.push_back(json_event("state", None, &current));
            self.last_state = Some(current);
        }
        loop {
            let page = match self
                .store
                .list_job_events(self.principal, self.job_id, self.last_id, EVENT_PAGE)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(job = %self.job_id, %error, "reading a followed job's events");
                    // The result waits for the events: read again after the next wake-up.
                    return;
                }
            };
            for recorded in &page {
                self.queue.push_back(json_event(
                    recorded.event.name(),
                    Some(recorded.id),
                    recorded,
                ));
                self.last_id = Some(recorded.id);
            }
            if (page.len() as i64) < EVENT_PAGE {
                break;
            }
        }
        if over {
            self.queue
                .push_back(json_event("result", None, &JobView::from(job)));
            self.done = true;
        }
    }
}

/// An SSE event of `name` carrying `data` as JSON.
fn json_event(name: &str, id: Option<i64>, data: &impl Serialize) -> Event {
    let event = Event::default().event(name);
    let event = match id {
        Some(id) => event.id(id.to_string()),
        None => event,
    };
    event
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name))
}
