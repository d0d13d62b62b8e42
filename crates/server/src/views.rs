//! What the API answers with, where it differs from the stored rows: a job without its lease
//! token and with its progress and result typed, a page of files with its cursor as an opaque
//! token.

use chrono::{DateTime, Utc};
use serde::Serialize;
use techpack_model::{FilePage, Job, JobProgress, JobResult, JobState, TechFile};
use uuid::Uuid;

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// The product idea.
    pub product_idea_id: Uuid,
    /// What the job does (`tech_pack`, `tech_pack_retry`).
    pub kind: String,
    /// Where the job is in its life.
    pub state: JobState,
    /// Claims so far.
    pub attempts: i32,
    /// Claims before it is given up.
    pub max_attempts: i32,
    /// The worker that holds (or last held) it.
    pub worker_id: Option<String>,
    /// Cancellation was asked for.
    pub cancel_requested: bool,
    /// The pack's collection, once known.
    pub collection_id: Option<Uuid>,
    /// The generation batch its runs fill.
    pub batch_id: Option<Uuid>,
    /// Progress as the runner last recorded it.
    pub progress: JobProgress,
    /// The pack it made, once finished.
    pub result: Option<JobResult>,
    /// Why the last attempt failed or was given back.
    pub last_error: Option<String>,
    /// The kind of the error it failed with.
    pub error_code: Option<String>,
    /// Not run before this time.
    pub run_after: DateTime<Utc>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Its last change.
    pub updated_at: DateTime<Utc>,
    /// Its first claim.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The caller's key for the request, when one was given.
    pub idempotency_key: Option<String>,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        Self {
            id: job.id,
            user_id: job.user_id,
            product_idea_id: job.product_idea_id,
            kind: job.kind.clone(),
            state: job.state,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            worker_id: job.worker_id.clone(),
            cancel_requested: job.cancel_requested,
            collection_id: job.collection_id,
            batch_id: job.batch_id,
            progress: job.pack_progress(),
            result: job.pack_result(),
            last_error: job.last_error.clone(),
            error_code: job.error_code.clone(),
            run_after: job.run_after,
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            idempotency_key: job.idempotency_key.clone(),
        }
    }
}

/// The answer to a pack request: the job that makes it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubmittedView {
    /// The job.
    pub job: JobView,
    /// Whether an identical request (or the same idempotency key) already had this job, so
    /// this request is not charged again.
    pub joined: bool,
    /// The generator it runs with.
    pub provider: String,
    /// Where its live events are.
    pub events: String,
}

/// A page of files.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FileListView {
    /// The latest version of each file, newest first.
    pub files: Vec<TechFile>,
    /// The `cursor` of the next page; absent on the last page.
    pub next: Option<String>,
}

impl From<FilePage> for FileListView {
    fn from(page: FilePage) -> Self {
        Self {
            files: page.files,
            next: page.next.map(|cursor| cursor.to_token()),
        }
    }
}

/// A signed link to a file's content.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ContentLink {
    /// The link: relative to this server for local blobs, absolute for S3.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// What `/readyz` reports.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Whether every dependency answered.
    pub ready: bool,
    /// The database's answer: `ok` or the failure.
    pub database: String,
    /// The blob store's answer: `ok` or the failure.
    pub blobs: String,
}
