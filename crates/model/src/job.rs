//! Durable generation jobs: a tech-pack run that is queued in the database, claimed by one
//! worker at a time under a lease, renewed by heartbeats, and finished (or given back). The
//! lease token is the fence: every write of a run carries it, so a worker whose lease moved to
//! another worker can no longer change anything.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::kinds::{UnknownVariant, string_enum};
use crate::validation::{
    MAX_JSON_BYTES, MAX_PAGE_SIZE, MAX_TEXT_BYTES, ValidationError, check_json_object, check_no_nul,
};

/// The kind of job that generates a complete tech pack.
pub const TECH_PACK_JOB_KIND: &str = "tech_pack";

/// How many times a job is claimed before it is given up, unless the job says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 3;

/// The most attempts a job may allow.
pub const MAX_JOB_ATTEMPTS: i32 = 100;

/// The longest job kind name, in characters.
pub const MAX_JOB_KIND_CHARS: usize = 64;

/// The longest lease a claim may take: a worker renews its lease by heartbeats, so a long lease
/// only delays the takeover of a job whose worker died.
pub const MAX_JOB_LEASE: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest delay a released job may wait before it is claimable again.
pub const MAX_JOB_DELAY: Duration = Duration::from_secs(30 * 24 * 60 * 60);

const MAX_WORKER_ID_CHARS: usize = 200;

string_enum!(
    /// Where a job is in its life.
    JobState, "job_state" {
        /// Waiting to be claimed (from `run_after` on).
        Queued => "queued",
        /// Claimed by a worker that holds its lease.
        Running => "running",
        /// Every step succeeded.
        Succeeded => "succeeded",
        /// Finished with some steps failed; the rest are kept.
        Partial => "partial",
        /// Finished without a usable result, or given up after too many attempts.
        Failed => "failed",
        /// Cancelled by its owner.
        Cancelled => "cancelled",
    }
);

impl JobState {
    /// Whether the job is over: it is never claimed or changed again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Partial | JobState::Failed | JobState::Cancelled
        )
    }
}

/// One durable generation job, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    /// Id.
    pub id: Uuid,
    /// Owner: the user the run generates for.
    pub user_id: Uuid,
    /// The product idea the run generates for.
    pub product_idea_id: Uuid,
    /// What the job does, e.g. [`TECH_PACK_JOB_KIND`].
    pub kind: String,
    /// The run's input, a JSON object defined by the pipeline (opaque to the store).
    pub request: Value,
    /// Where the job is in its life.
    pub state: JobState,
    /// How many times it has been claimed (a release that does not count refunds one).
    pub attempts: i32,
    /// After this many claims it is given up instead of claimed again.
    pub max_attempts: i32,
    /// The worker that holds (or last held) the lease.
    pub worker_id: Option<String>,
    /// The current lease's token: set exactly while the job is running.
    pub lease_token: Option<Uuid>,
    /// When the current lease runs out unless renewed (database clock).
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The last claim or heartbeat.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// The owner asked to cancel. A queued job is cancelled at once; a running job's runner
    /// sees this at its next heartbeat and stops at the next step boundary.
    pub cancel_requested: bool,
    /// The collection the run fills, once known.
    pub collection_id: Option<Uuid>,
    /// Progress set by the runner (`{done, total, failed, credits_used}`), a JSON object.
    pub progress: Value,
    /// The run's result, set when it finishes.
    pub result: Option<Value>,
    /// Why the last attempt failed or was given back.
    pub last_error: Option<String>,
    /// Not claimed before this time (a retry backoff).
    pub run_after: DateTime<Utc>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change (maintained by the database).
    pub updated_at: DateTime<Utc>,
    /// The first claim.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a terminal state.
    pub finished_at: Option<DateTime<Utc>>,
    /// What the job was asked to do, as a key: identical requests of one user join the job
    /// that is queued or running for them instead of queueing another.
    #[serde(default)]
    pub request_key: Option<String>,
    /// The caller's key for the request (an API client's `Idempotency-Key`): the same key
    /// always names this job.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The generation batch its runs fill: every attempt continues it.
    #[serde(default)]
    pub batch_id: Option<Uuid>,
    /// The kind of the error it failed with, by name (`invalid_input`, `unavailable` … see
    /// [`crate::ErrorKind`]).
    #[serde(default)]
    pub error_code: Option<String>,
}

/// The longest request or idempotency key, in bytes.
pub const MAX_JOB_KEY_BYTES: usize = 200;

/// The input of `enqueue_job`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewJob {
    /// Owner.
    pub user_id: Uuid,
    /// The product idea.
    pub product_idea_id: Uuid,
    /// What the job does (1..=64 characters).
    pub kind: String,
    /// The run's input: a JSON object of at most [`MAX_JSON_BYTES`].
    pub request: Value,
    /// Claims before the job is given up, 1..=100.
    pub max_attempts: i32,
    /// The collection the run fills, when it already exists.
    pub collection_id: Option<Uuid>,
    /// The request as a key: while a job of the same user with this key is queued or
    /// running, enqueueing returns that job instead of a new one.
    #[serde(default)]
    pub request_key: Option<String>,
    /// The caller's key: a job with this key of the same user, in any state, is returned
    /// instead of a new one (and a different request under the same key is a conflict).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The generation batch the job's runs fill.
    #[serde(default)]
    pub batch_id: Option<Uuid>,
}

impl NewJob {
    /// A tech-pack job with the default attempts, no collection yet and no keys.
    pub fn tech_pack(user_id: Uuid, product_idea_id: Uuid, request: Value) -> Self {
        Self {
            user_id,
            product_idea_id,
            kind: TECH_PACK_JOB_KIND.to_owned(),
            request,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            collection_id: None,
            request_key: None,
            idempotency_key: None,
            batch_id: None,
        }
    }

    /// Checks every field against the shared rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_no_nul("kind", &self.kind)?;
        if self.kind.trim().is_empty() {
            return Err(ValidationError::new("kind", "must not be empty"));
        }
        if self.kind.chars().count() > MAX_JOB_KIND_CHARS {
            return Err(ValidationError::new(
                "kind",
                format!("must be at most {MAX_JOB_KIND_CHARS} characters"),
            ));
        }
        check_json_object("request", &self.request)?;
        for (field, key) in [
            ("request_key", &self.request_key),
            ("idempotency_key", &self.idempotency_key),
        ] {
            if let Some(key) = key
                && (key.is_empty()
                    || key.len() > MAX_JOB_KEY_BYTES
                    || key.chars().any(char::is_control))
            {
                return Err(ValidationError::new(
                    field,
                    format!("must be 1 to {MAX_JOB_KEY_BYTES} bytes without control characters"),
                ));
            }
        }
        if !(1..=MAX_JOB_ATTEMPTS).contains(&self.max_attempts) {
            return Err(ValidationError::new(
                "max_attempts",
                format!(
                    "must be between 1 and {MAX_JOB_ATTEMPTS} (got {})",
                    self.max_attempts
                ),
            ));
        }
        Ok(())
    }
}

/// What `list_jobs` returns: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this product.
    pub product_idea_id: Option<Uuid>,
    /// At most this many (default 50, at most [`MAX_PAGE_SIZE`]).
    pub limit: Option<i64>,
}

impl JobFilter {
    /// The number of rows to return: the limit, checked, or 50.
    pub fn page_size(&self) -> Result<i64, ValidationError> {
        match self.limit {
            None => Ok(50),
            Some(limit) if limit < 1 => Err(ValidationError::new("limit", "must be at least 1")),
            Some(limit) if limit > i64::from(MAX_PAGE_SIZE) => Err(ValidationError::new(
                "limit",
                format!("must be at most {MAX_PAGE_SIZE}"),
            )),
            Some(limit) => Ok(limit),
        }
    }
}

/// A worker's hold on a running job, returned by a claim. The token is the fence: heartbeats,
/// progress, finishing and every write of a fenced store check it, and a claim by another
/// worker replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobLease {
    /// The job.
    pub job_id: Uuid,
    /// The worker that holds the lease.
    pub worker_id: String,
    /// The lease token; a new one per claim.
    pub token: Uuid,
    /// Which attempt this claim is (1 for the first).
    pub attempt: i32,
    /// How long each heartbeat extends the lease. Not serialized: a lease handed to another
    /// process keeps the token, and the receiver decides its own renewal period.
    #[serde(skip)]
    pub lease: Duration,
}

/// How a worker claims a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimOptions {
    /// Who claims (host name, process id …), recorded on the job.
    pub worker_id: String,
    /// How long the lease lasts without a heartbeat.
    pub lease: Duration,
    /// Never claim a job of a user who already has this many jobs running under unexpired
    /// leases (at least 1; `u32::MAX` for no limit).
    pub per_user_cap: u32,
    /// Claim this job only (an in-process run of a job just enqueued).
    pub only_job: Option<Uuid>,
}

impl ClaimOptions {
    /// Options with no per-user limit and any job.
    pub fn new(worker_id: impl Into<String>, lease: Duration) -> Self {
        Self {
            worker_id: worker_id.into(),
            lease,
            per_user_cap: u32::MAX,
            only_job: None,
        }
    }

    /// Checks the worker id, lease and cap.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.worker_id.trim().is_empty() {
            return Err(ValidationError::new("worker_id", "must not be empty"));
        }
        if self.worker_id.chars().count() > MAX_WORKER_ID_CHARS {
            return Err(ValidationError::new(
                "worker_id",
                format!("must be at most {MAX_WORKER_ID_CHARS} characters"),
            ));
        }
        check_lease(self.lease)?;
        if self.per_user_cap == 0 {
            return Err(ValidationError::new(
                "per_user_cap",
                "must be at least 1 (a cap of 0 would never claim anything)",
            ));
        }
        Ok(())
    }
}

/// Checks a lease period: at least a millisecond, at most [`MAX_JOB_LEASE`].
pub fn check_lease(lease: Duration) -> Result<(), ValidationError> {
    if lease < Duration::from_millis(1) || lease > MAX_JOB_LEASE {
        return Err(ValidationError::new(
            "lease",
            format!(
                "must be between 1 ms and {} s (got {lease:?})",
                MAX_JOB_LEASE.as_secs()
            ),
        ));
    }
    Ok(())
}

/// How a run ended: what `finish_job` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobOutcome {
    /// A terminal state: succeeded, partial, failed or cancelled.
    pub state: JobState,
    /// The run's result (any JSON of at most [`MAX_JSON_BYTES`]).
    pub result: Option<Value>,
    /// Why it failed (kept as the job's `last_error`; cut to [`MAX_TEXT_BYTES`]).
    pub error: Option<String>,
    /// The stable code of that error.
    #[serde(default)]
    pub error_code: Option<String>,
}

impl JobOutcome {
    /// Every step succeeded.
    pub fn succeeded(result: Option<Value>) -> Self {
        Self {
            state: JobState::Succeeded,
            result,
            error: None,
            error_code: None,
        }
    }

    /// The run failed for good with an error of code `code`.
    pub fn failed(error: impl Into<String>, code: &str) -> Self {
        Self {
            state: JobState::Failed,
            result: None,
            error: Some(error.into()),
            error_code: Some(code.to_owned()),
        }
    }

    /// The run stopped because its owner cancelled it.
    pub fn cancelled() -> Self {
        Self {
            state: JobState::Cancelled,
            result: None,
            error: None,
            error_code: None,
        }
    }

    /// Checks that the state is terminal and the result fits.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !self.state.is_terminal() {
            return Err(ValidationError::new(
                "state",
                format!(
                    "a job finishes as succeeded, partial, failed or cancelled (got {})",
                    self.state
                ),
            ));
        }
        if let Some(result) = &self.result {
            let size = serde_json::to_vec(result)
                .map(|bytes| bytes.len())
                .unwrap_or(usize::MAX);
            if size > MAX_JSON_BYTES {
                return Err(ValidationError::new(
                    "result",
                    format!("must serialize to at most {MAX_JSON_BYTES} bytes (got {size})"),
                ));
            }
        }
        Ok(())
    }
}

/// A tech-pack job's progress as its runner records it on the job row (`generation_jobs.progress`).
/// Every field defaults, so a job that has not started yet (`{}`) reads as all zeros.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct JobProgress {
    /// Steps with an output (generated or reused).
    pub done: u64,
    /// Steps failed, blocked or cancelled.
    pub failed: u64,
    /// Steps in the plan.
    pub total: u64,
    /// Credits this attempt's run charged so far.
    pub credits_used: i64,
    /// Steps with an output as a share of the plan, 0..=100.
    pub percentage: i32,
    /// Milliseconds since the run started.
    pub elapsed_ms: u64,
}

impl JobProgress {
    /// Whether the run has reported a plan yet.
    pub fn has_plan(&self) -> bool {
        self.total > 0
    }

    /// Steps that are over, one way or the other.
    pub fn finished_steps(&self) -> u64 {
        self.done + self.failed
    }
}

/// How many steps of a pack came about in each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct JobStepCounts {
    /// Made by the provider in this run (and charged).
    pub generated: u64,
    /// Reused from an earlier run at no charge.
    pub reused: u64,
    /// Failed, or blocked by their view's failed analysis.
    pub failed: u64,
    /// Not started because the run was stopped.
    pub cancelled: u64,
}

/// A failed step of a pack, as a job's result lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FailedStep {
    /// The step, e.g. `front close-up 2 (collar)`.
    pub step: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// What a finished tech-pack job keeps of its pack (`generation_jobs.result`): enough to report
/// it without reading the collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobResult {
    /// The pack's `tech_pack_v2` collection.
    pub collection_id: Uuid,
    /// The generation batch of the run.
    pub batch_id: Uuid,
    /// The product idea.
    pub product_idea_id: Uuid,
    /// The pack's final status.
    pub status: crate::CollectionStatus,
    /// Share of the pack's steps with an output, 0..=100.
    pub completion_percentage: i32,
    /// Credits this run charged.
    pub credits_used: i64,
    /// Credits of the whole pack (its files', reused ones included), as the database keeps them.
    pub collection_credits: i64,
    /// Wall time of the run.
    pub elapsed_ms: u64,
    /// How the steps came about.
    #[serde(default)]
    pub steps: JobStepCounts,
    /// The first failed steps (at most [`MAX_FAILED_STEPS_LISTED`]).
    #[serde(default)]
    pub failed: Vec<FailedStep>,
}

/// How many failed steps a job's result lists.
pub const MAX_FAILED_STEPS_LISTED: usize = 20;

impl Job {
    /// The progress its runner recorded, typed; zeros before the first report (or for a
    /// progress document this build cannot read).
    pub fn pack_progress(&self) -> JobProgress {
        serde_json::from_value(self.progress.clone()).unwrap_or_default()
    }

    /// The pack it made, typed, once it finished with one.
    pub fn pack_result(&self) -> Option<JobResult> {
        self.result
            .as_ref()
            .and_then(|result| serde_json::from_value(result.clone()).ok())
    }
}

/// Cuts an error message to [`MAX_TEXT_BYTES`] at a character boundary: recording why a run
/// failed must never fail because the message is long.
pub fn clip_job_error(message: &str) -> String {
    if message.len() <= MAX_TEXT_BYTES {
        return message.to_owned();
    }
    let mut end = MAX_TEXT_BYTES - '…'.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn states_round_trip_and_know_which_are_terminal() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), *state);
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        let terminal: Vec<_> = JobState::ALL
            .iter()
            .filter(|state| state.is_terminal())
            .map(|state| state.as_str())
            .collect();
        assert_eq!(terminal, ["succeeded", "partial", "failed", "cancelled"]);
    }

    #[test]
    fn new_jobs_are_checked() {
        let ok = NewJob::tech_pack(Uuid::new_v4(), Uuid::new_v4(), json!({"views": []}));
        ok.validate().unwrap();
        assert_eq!(ok.max_attempts, DEFAULT_MAX_ATTEMPTS);
        let mut bad = ok.clone();
        bad.request = json!([1, 2]);
        assert_eq!(bad.validate().unwrap_err().field, "request");
        let mut bad = ok.clone();
        bad.max_attempts = 0;
        assert_eq!(bad.validate().unwrap_err().field, "max_attempts");
        let mut bad = ok.clone();
        bad.kind = "k".repeat(65);
        assert_eq!(bad.validate().unwrap_err().field, "kind");
        let mut bad = ok;
        bad.kind = " ".into();
        assert_eq!(bad.validate().unwrap_err().field, "kind");
    }

    #[test]
    fn claims_and_outcomes_are_checked() {
        let options = ClaimOptions::new("w1", Duration::from_secs(30));
        options.validate().unwrap();
        let mut bad = options.clone();
        bad.per_user_cap = 0;
        assert_eq!(bad.validate().unwrap_err().field, "per_user_cap");
        let mut bad = options.clone();
        bad.lease = Duration::ZERO;
        assert_eq!(bad.validate().unwrap_err().field, "lease");
        let mut bad = options;
        bad.worker_id = String::new();
        assert_eq!(bad.validate().unwrap_err().field, "worker_id");
        JobOutcome::succeeded(Some(json!({"files": 3})))
            .validate()
            .unwrap();
        let running = JobOutcome {
            state: JobState::Running,
            result: None,
            error: None,
            error_code: None,
        };
        assert_eq!(running.validate().unwrap_err().field, "state");
    }

    #[test]
    fn long_errors_are_clipped_at_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT_BYTES);
        let clipped = clip_job_error(&long);
        assert!(clipped.len() <= MAX_TEXT_BYTES);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip_job_error("short"), "short");
    }

    #[test]
    fn page_size_defaults_and_bounds() {
        assert_eq!(JobFilter::default().page_size().unwrap(), 50);
        let mut filter = JobFilter {
            limit: Some(0),
            ..JobFilter::default()
        };
        assert!(filter.page_size().is_err());
        filter.limit = Some(i64::from(MAX_PAGE_SIZE) + 1);
        assert!(filter.page_size().is_err());
        filter.limit = Some(7);
        assert_eq!(filter.page_size().unwrap(), 7);
    }
}
