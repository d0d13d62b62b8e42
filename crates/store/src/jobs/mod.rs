//! Durable generation jobs: the [`JobStore`] half of the store. A tech-pack run becomes a row of
//! `generation_jobs` that workers on any machine claim under a lease, renew by heartbeats and
//! finish. The lease token fences the run: the job calls check it, and a [`JobStore::fenced`]
//! store checks it inside every write transaction, so a worker whose lease moved to another
//! worker can no longer write anything.

pub(crate) mod events;
pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use techpack_model::{
    ClaimOptions, Job, JobEvent, JobFilter, JobLease, JobOutcome, JobState, MAX_JOB_DELAY,
    MAX_JSON_BYTES, MAX_PAGE_SIZE, NewJob, Principal, ProgressEvent, ValidationError,
};
use uuid::Uuid;

pub use events::{JOB_EVENTS_CHANNEL, JobEventWaker};

use crate::sql::{Bind, Dialect, Query};
use crate::{StoreError, StoreResult, TechFileStore};

/// The PostgreSQL channel that the jobs table notifies when a job may have become claimable.
pub const JOBS_CHANNEL: &str = "techpack_jobs";

/// Durable generation jobs, on both backends.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Queues a job for its owner (a user may queue only their own; the service anyone's),
    /// unless it is one that exists already: a job of the same owner with the same
    /// `idempotency_key` (in any state; a different `request_key` under the same key is a
    /// `Conflict`), or a queued or running job with the same `request_key`. Returns the job and
    /// whether it existed (the caller joined it). Two identical calls at once make one job.
    async fn enqueue_or_join(&self, principal: Principal, job: NewJob) -> StoreResult<(Job, bool)>;

    /// [`JobStore::enqueue_or_join`] without saying whether the job was new.
    async fn enqueue_job(&self, principal: Principal, job: NewJob) -> StoreResult<Job> {
        Ok(self.enqueue_or_join(principal, job).await?.0)
    }
    /// One job. Another user's job is `NotFound`, like a missing one.
    async fn get_job(&self, principal: Principal, id: Uuid) -> StoreResult<Job>;
    /// Jobs, newest first; a user sees their own, the service sees all.
    async fn list_jobs(&self, principal: Principal, filter: &JobFilter) -> StoreResult<Vec<Job>>;
    /// Cancels a job: a queued job becomes `cancelled` at once (`finished_at` set); a running
    /// job gets `cancel_requested` (its runner sees it at the next heartbeat and stops at the
    /// next step boundary). A terminal job is a `Conflict` ("job … already {state}").
    async fn cancel_job(&self, principal: Principal, id: Uuid) -> StoreResult<Job>;
    /// Claims the claimable job that is due first (earliest `run_after`, then oldest): a queued
    /// job whose `run_after` has passed, or a running job whose lease expired (its worker
    /// died). The claim counts an attempt and hands out a new lease token. A job that already
    /// used all its attempts is finished as failed ("gave up after N attempts: …") instead, an
    /// expired job whose owner asked to cancel is finished as cancelled, and the next candidate
    /// is tried. Never claims a job of a user who already has `per_user_cap` jobs running under
    /// unexpired leases, and never a job whose product has another job running under an unexpired
    /// lease (one run per product at a time: runs of one product never race for its files). The
    /// service claims anyone's jobs; a user only their own.
    async fn claim_job(
        &self,
        principal: Principal,
        options: &ClaimOptions,
    ) -> StoreResult<Option<(Job, JobLease)>>;
    /// Extends the lease to now + `lease.lease` and stamps `heartbeat_at`; returns the job so
    /// the runner sees `cancel_requested`. `LeaseLost` when the job no longer runs under this
    /// token.
    async fn heartbeat_job(&self, lease: &JobLease) -> StoreResult<Job>;
    /// Records the collection (when given), the progress document (a JSON object) and the
    /// run's events since the last call (in order, under the job's current attempt), in one
    /// transaction fenced like a heartbeat, and wakes the job's event readers.
    async fn record_job_progress(
        &self,
        lease: &JobLease,
        collection_id: Option<Uuid>,
        progress: Value,
        events: &[ProgressEvent],
    ) -> StoreResult<()>;
    /// The job's recorded events after the event `after` (from the first without), oldest
    /// first, at most `limit` (1 to [`MAX_PAGE_SIZE`]). Another user's job has none.
    async fn list_job_events(
        &self,
        principal: Principal,
        job_id: Uuid,
        after: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<JobEvent>>;
    /// A waker for readers of job events: make it, read the events, wait, read again.
    fn job_event_waker(&self) -> JobEventWaker;
    /// How many jobs are in each state (states without jobs are left out); a user counts
    /// their own, the service all.
    async fn count_jobs_by_state(&self, principal: Principal) -> StoreResult<Vec<(JobState, i64)>>;
    /// Ends the run: the outcome's terminal state, result and error, `finished_at`, and no
    /// lease. Fenced: a second finish, or a finish after the lease moved, is `LeaseLost`.
    async fn finish_job(&self, lease: &JobLease, outcome: JobOutcome) -> StoreResult<Job>;
    /// Gives the job back: queued again after `delay` (a retry backoff, or zero for a worker
    /// that shuts down), no lease, `last_error = reason`. Without `count_attempt` the claim's
    /// attempt is refunded (a clean shutdown is not the job's fault). With `count_attempt`, a job
    /// that used all its attempts is finished as failed instead, and a job whose owner asked to
    /// cancel is finished as cancelled either way. Fenced.
    async fn release_job(
        &self,
        lease: &JobLease,
        reason: &str,
        delay: Duration,
        count_attempt: bool,
    ) -> StoreResult<Job>;
    /// Waits until a job may have become claimable, or `timeout` passes; either way the caller
    /// then tries to claim. PostgreSQL listens on [`JOBS_CHANNEL`] with one listener the store
    /// keeps (and its clones share), so a notification that arrives between two waits is not
    /// lost; the very first wait returns at once, because nothing was listening before it.
    /// SQLite sleeps `timeout`. Wake-ups may be spurious: polling is the fallback on both.
    async fn wait_for_jobs(&self, timeout: Duration) -> StoreResult<()>;
    /// A store on the same pool whose every write transaction first checks, inside that
    /// transaction, that the job still runs under this lease token, and fails with
    /// [`StoreError::LeaseLost`] otherwise. Reads need no fence and single-query reads skip
    /// it (a few multi-query reads share the write path and are fenced too). PostgreSQL locks
    /// the job row `FOR KEY SHARE` for the transaction, which a claim's `FOR UPDATE` conflicts
    /// with: a stale worker's write either commits before another worker's claim or fails,
    /// while the worker's own heartbeats (plain UPDATEs) do not wait for it. SQLite checks
    /// under `BEGIN IMMEDIATE`, the single writer lock. The job calls of the returned store are
    /// not fenced by it: they carry their own lease.
    fn fenced(&self, lease: &JobLease) -> Arc<dyn TechFileStore>;
}

/// The lease a fenced store checks before each write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fence {
    pub job_id: Uuid,
    pub token: Uuid,
}

impl Fence {
    pub(crate) fn of(lease: &JobLease) -> Self {
        Self {
            job_id: lease.job_id,
            token: lease.token,
        }
    }
}

/// The error of a write whose lease is gone.
pub(crate) fn lease_lost(job_id: Uuid) -> StoreError {
    StoreError::LeaseLost(format!(
        "job {job_id}: the job's lease moved to another worker (or the job is no longer running); stop this run"
    ))
}

/// The message a job gets when a claim gives it up.
pub(crate) fn gave_up_message(attempts: i32, previous: &str) -> String {
    format!("gave up after {attempts} attempts: {previous}")
}

/// What a claim records when it takes over a job whose worker stopped renewing its lease.
pub(crate) fn worker_stopped_message(worker_id: Option<&str>) -> String {
    match worker_id {
        Some(worker) => format!("the worker {worker} stopped (its lease expired)"),
        None => "the worker stopped".to_owned(),
    }
}

/// The events as the JSON array the events table is filled from. A NUL in a text (an error a
/// provider sent) becomes U+FFFD, which PostgreSQL's jsonb can hold, rather than losing the
/// event; each event must fit the table's size check.
pub(crate) fn event_docs(events: &[ProgressEvent]) -> Result<Value, ValidationError> {
    let mut docs = Vec::with_capacity(events.len());
    for event in events {
        let mut doc = serde_json::to_value(event)
            .map_err(|error| ValidationError::new("events", error.to_string()))?;
        replace_nul(&mut doc);
        let size = serde_json::to_vec(&doc)
            .map(|bytes| bytes.len())
            .unwrap_or(usize::MAX);
        if size > MAX_JSON_BYTES {
            return Err(ValidationError::new(
                "events",
                format!("each must serialize to at most {MAX_JSON_BYTES} bytes (got {size})"),
            ));
        }
        docs.push(doc);
    }
    Ok(Value::Array(docs))
}

fn replace_nul(value: &mut Value) {
    match value {
        Value::String(text) if text.contains('\0') => *text = text.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(map) => map.values_mut().for_each(replace_nul),
        _ => {}
    }
}

/// The rows of `count_jobs_by_state` as states.
pub(crate) fn states_counted(rows: Vec<(String, i64)>) -> StoreResult<Vec<(JobState, i64)>> {
    rows.into_iter()
        .map(|(state, count)| {
            let state = state
                .parse::<JobState>()
                .map_err(|error| StoreError::Corrupt(format!("a job's state: {error}")))?;
            Ok((state, count))
        })
        .collect()
}

/// The page size of `list_job_events`.
pub(crate) fn check_event_limit(limit: i64) -> Result<i64, ValidationError> {
    if !(1..=i64::from(MAX_PAGE_SIZE)).contains(&limit) {
        return Err(ValidationError::new(
            "limit",
            format!("must be between 1 and {MAX_PAGE_SIZE} (got {limit})"),
        ));
    }
    Ok(limit)
}

/// How often a reader of job events looks without a wake-up: on PostgreSQL only notifications
/// lost to a reconnect need it; on SQLite it is how soon another process's writes are seen.
pub(crate) const POSTGRES_EVENT_POLL: Duration = Duration::from_secs(2);
/// See [`POSTGRES_EVENT_POLL`].
pub(crate) const SQLITE_EVENT_POLL: Duration = Duration::from_millis(250);

/// The progress document is a JSON object of at most [`MAX_JSON_BYTES`], like every document.
pub(crate) fn check_progress(progress: &Value) -> Result<(), ValidationError> {
    if !progress.is_object() {
        return Err(ValidationError::new("progress", "must be a JSON object"));
    }
    let size = serde_json::to_vec(progress)
        .map(|bytes| bytes.len())
        .unwrap_or(usize::MAX);
    if size > MAX_JSON_BYTES {
        return Err(ValidationError::new(
            "progress",
            format!("must serialize to at most {MAX_JSON_BYTES} bytes (got {size})"),
        ));
    }
    Ok(())
}

pub(crate) fn check_delay(delay: Duration) -> Result<(), ValidationError> {
    if delay > MAX_JOB_DELAY {
        return Err(ValidationError::new(
            "delay",
            format!(
                "must be at most {} s (got {delay:?})",
                MAX_JOB_DELAY.as_secs()
            ),
        ));
    }
    Ok(())
}

/// The query of `list_jobs`: only the filters given become conditions.
pub(crate) fn list_query(
    dialect: Dialect,
    principal: Principal,
    filter: &JobFilter,
) -> StoreResult<Query> {
    let limit = filter.page_size()?;
    let mut q = Query::new(dialect);
    match dialect {
        Dialect::Postgres => q.push("SELECT to_jsonb(j)::text FROM public.generation_jobs AS j"),
        Dialect::Sqlite => q.push("SELECT j.doc FROM generation_jobs_doc AS j"),
    };
    q.push(" WHERE 1 = 1");
    q.scope("j", principal);
    if let Some(state) = filter.state {
        q.push(" AND j.state = ")
            .bind(Bind::Text(state.as_str().into()));
    }
    if let Some(product) = filter.product_idea_id {
        q.push(" AND j.product_idea_id = ")
            .bind(Bind::Uuid(product));
    }
    q.push(" ORDER BY j.created_at DESC, j.id DESC LIMIT ")
        .bind(Bind::Int(limit));
    Ok(q)
}

/// The error a reused idempotency key gets when it came with another request.
pub(crate) fn key_reused(key: &str, existing: &Job) -> StoreError {
    StoreError::Conflict(format!(
        "the idempotency key {key:?} was already used for a different request (job {}); send a new key with a new request",
        existing.id
    ))
}

/// The code a job gets when a claim gives it up because its runs kept dying.
pub(crate) const GAVE_UP_CODE: &str = "gave_up";
