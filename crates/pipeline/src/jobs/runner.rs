//! Runs one claimed job: heartbeats its lease while the pipeline works through a store fenced
//! by that lease, records its progress on the job row, and ends it — finished, given back for
//! another attempt, or abandoned when another worker took the lease over.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use techpack_blobs::BlobStore;
use techpack_generate::Provider;
use techpack_model::{
    CollectionStatus, ErrorKind, FailedStep, Job, JobLease, JobOutcome, JobProgress, JobResult,
    JobState, JobStepCounts, MAX_FAILED_STEPS_LISTED,
};
use techpack_store::{StoreError, TechFileStore};
use tokio_util::sync::CancellationToken;

use crate::error::{PipelineError, PipelineResult};
use crate::jobs::request::{JobRequest, JobWork};
use crate::progress::{ProgressEvent, ProgressSender};
use crate::request::{StepOrigin, TechPackResult};
use crate::run::Pipeline;

/// Makes the provider a job names (`local`, `openai` …), configured the way this process is.
pub type ProviderFactory =
    Arc<dyn Fn(&str) -> Result<Arc<dyn Provider>, String> + Send + Sync + 'static>;

/// What runs jobs: the stores and the providers.
#[derive(Clone)]
pub struct JobEnvironment {
    /// The metadata store (unfenced: each job gets a store fenced by its own lease).
    pub store: Arc<dyn TechFileStore>,
    /// The blob store.
    pub blobs: BlobStore,
    /// Makes the provider each job names.
    pub providers: ProviderFactory,
}

impl std::fmt::Debug for JobEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobEnvironment")
            .field("store", &self.store.backend())
            .finish_non_exhaustive()
    }
}

/// How the holder of a job can stop it. Both stop at the next step boundary.
#[derive(Debug, Clone, Default)]
pub struct JobControl {
    /// Where the run's progress events go.
    pub progress: Option<ProgressSender>,
    /// The person running it asked to stop (Ctrl-C): the job ends `cancelled`.
    pub interrupt: CancellationToken,
    /// The worker is shutting down: the job is given back, queued for another worker, and
    /// the attempt does not count against it.
    pub shutdown: CancellationToken,
}

/// How a run of a claimed job ended.
#[derive(Debug)]
pub enum JobRunEnd {
    /// The job reached a terminal state (or was given back for another attempt) with this row.
    Ended(Box<Job>),
    /// Another worker holds the job now (this one stalled past its lease); nothing was written
    /// after the lease moved, and the job is the new holder's to finish.
    LeaseLost,
    /// The run ended but the store refused to record how (it is unreachable or full): the job
    /// still runs under this lease, which runs out so that a worker resumes it.
    Unrecorded {
        /// The job as it was last read.
        job: Box<Job>,
        /// Why its end could not be recorded.
        error: StoreError,
    },
}

/// A run of a claimed job.
#[derive(Debug)]
pub struct JobRun {
    /// How it ended.
    pub end: JobRunEnd,
    /// The pack, when the pipeline got as far as making one.
    pub result: Option<TechPackResult>,
    /// Why the run itself failed, when it did (the job row keeps the message; this keeps the
    /// error, with its kind).
    pub error: Option<PipelineError>,
}

/// Why the run was asked to stop, first reason first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Cancelled,
    Interrupted,
    Shutdown,
}

/// How often progress is written to the job row at most (the first event and the end always
/// are).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// How long a job waits after a worker found it could not make the job's provider.
const PROVIDER_UNAVAILABLE_DELAY: Duration = Duration::from_secs(30);

/// The longest wait before a failed attempt is tried again.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// Runs a job this process has claimed, until it ends or its lease is lost.
pub async fn run_claimed_job(
    environment: &JobEnvironment,
    job: Job,
    lease: JobLease,
    control: JobControl,
) -> JobRun {
    let store = environment.store.clone();
    // A worker that cannot make the job's provider (e.g. no API key here) gives the job back
    // for a worker that can, without counting the attempt against it.
    let prepared = match JobRequest::from_job(&job) {
        Ok(request) => match (environment.providers)(&request.provider) {
            Ok(provider) => Ok((request, provider)),
            Err(error) => {
                let reason = format!(
                    "worker {} cannot run provider `{}`: {error}",
                    lease.worker_id, request.provider
                );
                let end = match store
                    .release_job(&lease, &reason, PROVIDER_UNAVAILABLE_DELAY, false)
                    .await
                {
                    Ok(job) => JobRunEnd::Ended(Box::new(job)),
                    Err(StoreError::LeaseLost(_)) => JobRunEnd::LeaseLost,
                    Err(error) => JobRunEnd::Unrecorded {
                        job: Box::new(job),
                        error,
                    },
                };
                return JobRun {
                    end,
                    result: None,
                    error: None,
                };
            }
        },
        // An unreadable request fails the job below, permanently.
        Err(error) => Err(error),
    };
    let stop = CancellationToken::new();
    let lost = CancellationToken::new();
    let reason: Arc<Mutex<Option<StopReason>>> = Arc::default();

    let heartbeat = tokio::spawn(heartbeat(
        store.clone(),
        lease.clone(),
        stop.clone(),
        lost.clone(),
        reason.clone(),
    ));
    let stop_relay = {
        let stop = stop.clone();
        let reason = reason.clone();
        let control = control.clone();
        tokio::spawn(async move {
            let why = tokio::select! {
                _ = control.interrupt.cancelled() => StopReason::Interrupted,
                _ = control.shutdown.cancelled() => StopReason::Shutdown,
                _ = stop.cancelled() => return,
            };
            reason.lock().expect("stop reason lock").get_or_insert(why);
            stop.cancel();
        })
    };
    let (events, event_queue) = tokio::sync::mpsc::unbounded_channel();
    let recorder = tokio::spawn(record_progress(
        store.clone(),
        lease.clone(),
        event_queue,
        control.progress.clone(),
        lost.clone(),
    ));

    let outcome = tokio::select! {
        outcome = run_pipeline(environment, prepared, &job, &lease, stop.clone(), events) => outcome,
        // The fenced store would refuse every further write anyway; stop at once.
        _ = lost.cancelled() => Err(PipelineError::Store(StoreError::LeaseLost(
            format!("job {}: another worker took the lease over", job.id),
        ))),
    };
    heartbeat.abort();
    stop_relay.abort();
    // The recorder ends once the run's event sender is gone; its last write must land before
    // the job is ended, or it would be refused as stale.
    let _ = recorder.await;
    if matches!(
        &outcome,
        Err(PipelineError::Store(StoreError::LeaseLost(_)))
    ) || lost.is_cancelled()
    {
        return JobRun {
            end: JobRunEnd::LeaseLost,
            result: outcome.ok(),
            error: None,
        };
    }
    let why = *reason.lock().expect("stop reason lock");
    let ended = end_job(store.as_ref(), &lease, &outcome, why).await;
    let end = match ended {
        Ok(job) => JobRunEnd::Ended(Box::new(job)),
        Err(StoreError::LeaseLost(_)) => JobRunEnd::LeaseLost,
        Err(error) => {
            // The row could not be written; the lease expires and another worker resumes the
            // job, reusing every finished step.
            tracing::warn!(job = %job.id, %error, "could not record the end of a job");
            JobRunEnd::Unrecorded {
                job: Box::new(job.clone()),
                error,
            }
        }
    };
    let (result, error) = match outcome {
        Ok(result) => (Some(result), None),
        Err(error) => (None, Some(error)),
    };
    JobRun { end, result, error }
}

async fn run_pipeline(
    environment: &JobEnvironment,
    prepared: PipelineResult<(JobRequest, Arc<dyn Provider>)>,
    job: &Job,
    lease: &JobLease,
    stop: CancellationToken,
    events: ProgressSender,
) -> PipelineResult<TechPackResult> {
    let (request, provider) = prepared?;
    let pipeline = Pipeline::new(
        environment.store.fenced(lease),
        environment.blobs.clone(),
        provider,
    );
    let mut options = request.options();
    options.stop = Some(stop);
    match &request.work {
        JobWork::Generate { .. } => {
            let mut pack = request
                .tech_pack_request(job, &environment.blobs)
                .await?
                .expect("a generate job has a tech-pack request");
            pack.options = options;
            pipeline.generate(pack, Some(events)).await
        }
        JobWork::RetryFailed { collection_id } => {
            pipeline
                .retry_failed(job.user_id, *collection_id, options, Some(events))
                .await
        }
    }
}

/// Renews the lease every third of its period; sees a cancel request and a lost lease.
async fn heartbeat(
    store: Arc<dyn TechFileStore>,
    lease: JobLease,
    stop: CancellationToken,
    lost: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
) {
    let period = (lease.lease / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(period).await;
        match store.heartbeat_job(&lease).await {
            Ok(job) if job.cancel_requested => {
                reason
                    .lock()
                    .expect("stop reason lock")
                    .get_or_insert(StopReason::Cancelled);
                stop.cancel();
            }
            Ok(_) => {}
            Err(StoreError::LeaseLost(_)) => {
                lost.cancel();
                stop.cancel();
                return;
            }
            Err(error) => {
                // A passing database hiccup: try again next period; if it lasts past the lease,
                // the lease is lost and the fence stops this run's writes.
                tracing::warn!(job = %lease.job_id, %error, "a job heartbeat failed");
            }
        }
    }
}

/// Passes the run's events on and writes the job's progress and events: the collection as
/// soon as it is known, the counts and the events since the last write at most every
/// [`PROGRESS_INTERVAL`] and at the end. A write that fails keeps its events for the next one.
async fn record_progress(
    store: Arc<dyn TechFileStore>,
    lease: JobLease,
    mut events: tokio::sync::mpsc::UnboundedReceiver<ProgressEvent>,
    forward: Option<ProgressSender>,
    lost: CancellationToken,
) {
    let mut written_at: Option<Instant> = None;
    let mut collection = None;
    let mut pending = None;
    let mut unwritten: Vec<ProgressEvent> = Vec::new();
    loop {
        // What is pending is written when the interval is over, even when no event follows.
        let interval_over = async {
            match written_at {
                Some(at) if pending.is_some() => {
                    tokio::time::sleep_until((at + PROGRESS_INTERVAL).into()).await
                }
                _ => std::future::pending().await,
            }
        };
        let mut finished = false;
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    if let Some(forward) = &forward {
                        let _ = forward.send(event.clone());
                    }
                    if let ProgressEvent::Started { collection_id, .. } = &event {
                        collection = Some(*collection_id);
                        written_at = None;
                    }
                    pending = Some(progress_doc(&event));
                    unwritten.push(event);
                }
                None => finished = true,
            },
            _ = interval_over => {}
        }
        let due = written_at.is_none_or(|at| at.elapsed() >= PROGRESS_INTERVAL);
        if (due || finished)
            && let Some(progress) = pending.take()
        {
            match store
                .record_job_progress(&lease, collection, progress.clone(), &unwritten)
                .await
            {
                Ok(()) => {
                    written_at = Some(Instant::now());
                    collection = None;
                    unwritten.clear();
                }
                Err(StoreError::LeaseLost(_)) => {
                    lost.cancel();
                    return;
                }
                Err(error) => {
                    tracing::warn!(job = %lease.job_id, %error, "recording job progress");
                    pending.get_or_insert(progress);
                }
            }
        }
        if finished {
            return;
        }
    }
}

fn progress_doc(event: &ProgressEvent) -> Value {
    let counts = event.counts();
    let progress = JobProgress {
        done: counts.done as u64,
        failed: counts.failed as u64,
        total: counts.total as u64,
        credits_used: counts.credits_used,
        percentage: counts.percentage(),
        elapsed_ms: counts.elapsed_ms,
    };
    serde_json::to_value(progress).unwrap_or(Value::Null)
}

/// Records how the run ended: a terminal state, or back in the queue for another attempt.
async fn end_job(
    store: &dyn TechFileStore,
    lease: &JobLease,
    outcome: &PipelineResult<TechPackResult>,
    why: Option<StopReason>,
) -> Result<Job, StoreError> {
    let result = match outcome {
        Ok(result) => result,
        Err(error) if is_permanent(error) => {
            return store
                .finish_job(
                    lease,
                    JobOutcome::failed(error.to_string(), error.kind().as_str()),
                )
                .await;
        }
        Err(error) => {
            if why == Some(StopReason::Shutdown) {
                return store
                    .release_job(lease, "the worker shut down", Duration::ZERO, false)
                    .await;
            }
            // The store, the blob store or a task failed: another attempt may well succeed.
            return store
                .release_job(lease, &error.to_string(), retry_delay(lease.attempt), true)
                .await;
        }
    };
    let summary = result_summary(result);
    if result.status == CollectionStatus::Completed {
        return store
            .finish_job(lease, JobOutcome::succeeded(Some(summary)))
            .await;
    }
    let cancelled = result
        .steps()
        .filter(|step| step.origin == StepOrigin::Cancelled)
        .count();
    let done = result.steps().filter(|step| step.error.is_none()).count();
    let total = result.steps().count();
    match why {
        Some(StopReason::Shutdown) => {
            store
                .release_job(
                    lease,
                    &format!("the worker shut down after {done} of {total} steps; another worker resumes the job"),
                    Duration::ZERO,
                    false,
                )
                .await
        }
        Some(StopReason::Cancelled) | Some(StopReason::Interrupted) if cancelled > 0 => {
            let how = if why == Some(StopReason::Cancelled) {
                "cancelled on request"
            } else {
                "interrupted"
            };
            store
                .finish_job(
                    lease,
                    JobOutcome {
                        state: JobState::Cancelled,
                        result: Some(summary),
                        error_code: Some("cancelled".into()),
                        error: Some(format!(
                            "{how} at a step boundary: {done} of {total} steps done, {cancelled} not started; run the same command again (or `techpack generate --retry-failed {}`) to finish the pack",
                            result.collection_id
                        )),
                    },
                )
                .await
        }
        _ if result.status == CollectionStatus::Failed => {
            match permanent_failure(result) {
                // Every step failed for a reason another run cannot change (a photo that is
                // not an image, a refused key, an answer that breaks the schema): fail now.
                Some(kind) => {
                    store
                        .finish_job(
                            lease,
                            JobOutcome {
                                state: JobState::Failed,
                                result: Some(summary),
                                error: Some(first_error(result)),
                                error_code: Some(kind.as_str().to_owned()),
                            },
                        )
                        .await
                }
                // Every step failed, after the provider's own retries, for a reason that may
                // pass: try the job again later, not before the provider said it would
                // answer; the store gives up after its last attempt and keeps this error.
                None => {
                    store
                        .release_job(
                            lease,
                            &first_error(result),
                            retry_delay(lease.attempt).max(requested_wait(result)),
                            true,
                        )
                        .await
                }
            }
        }
        _ => {
            store
                .finish_job(
                    lease,
                    JobOutcome {
                        state: JobState::Partial,
                        result: Some(summary),
                        error_code: None,
                        error: Some(format!(
                            "{} of {total} steps failed; first: {}; `techpack generate --retry-failed {}` redoes them",
                            total - done,
                            first_error(result),
                            result.collection_id
                        )),
                    },
                )
                .await
        }
    }
}

/// Errors another attempt cannot fix: the request is wrong, or stored data is unreadable.
fn is_permanent(error: &PipelineError) -> bool {
    error.kind().is_caller_error() || matches!(error, PipelineError::Corrupt(_))
}

/// The kind of failure of a pack whose every step failed, when no step failed for a reason
/// that may pass (an outage, a timeout, a rate limit): then running it again would fail the
/// same way, and would be billed again.
fn permanent_failure(result: &TechPackResult) -> Option<ErrorKind> {
    let mut failed = result.failed_steps().peekable();
    let first = failed.peek()?.error_kind.unwrap_or(ErrorKind::Internal);
    failed
        .all(|step| {
            let kind = step.error_kind.unwrap_or(ErrorKind::Internal);
            // A provider's word wins; a caller error is never worth another run either.
            !step.retryable || kind.is_caller_error()
        })
        .then_some(first)
}

/// The longest wait a provider asked for among the failed steps (no longer than a job may
/// be put off).
fn requested_wait(result: &TechPackResult) -> Duration {
    result
        .failed_steps()
        .filter_map(|step| step.retry_after_ms)
        .max()
        .map_or(Duration::ZERO, Duration::from_millis)
        .min(techpack_model::MAX_JOB_DELAY)
}

/// Exponential backoff between attempts: 2 s, 4 s, 8 s … up to [`MAX_RETRY_DELAY`].
fn retry_delay(attempt: i32) -> Duration {
    let exponent = attempt.clamp(1, 16) as u32;
    Duration::from_secs(1u64 << exponent).min(MAX_RETRY_DELAY)
}

fn first_error(result: &TechPackResult) -> String {
    result
        .failed_steps()
        .next()
        .map(|step| {
            format!(
                "{}: {}",
                step.step,
                step.error.as_deref().unwrap_or("unknown error")
            )
        })
        .unwrap_or_else(|| "no step succeeded".into())
}

/// What the job row keeps of a pack: enough to report it without reading the collection.
pub fn result_summary(result: &TechPackResult) -> Value {
    let count = |origins: &[StepOrigin]| {
        result
            .steps()
            .filter(|step| origins.contains(&step.origin))
            .count() as u64
    };
    let summary = JobResult {
        collection_id: result.collection_id,
        batch_id: result.batch_id,
        product_idea_id: result.product_idea_id,
        status: result.status,
        completion_percentage: result.completion_percentage,
        credits_used: result.credits_used,
        collection_credits: result.collection_credits,
        elapsed_ms: result.elapsed_ms,
        steps: JobStepCounts {
            generated: count(&[StepOrigin::Generated]),
            reused: count(&[StepOrigin::Cached, StepOrigin::LegacyCache]),
            failed: count(&[StepOrigin::Failed, StepOrigin::Blocked]),
            cancelled: count(&[StepOrigin::Cancelled]),
        },
        failed: result
            .failed_steps()
            .take(MAX_FAILED_STEPS_LISTED)
            .map(|step| FailedStep {
                step: step.step.to_string(),
                error: step.error.clone(),
            })
            .collect(),
    };
    serde_json::to_value(summary).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        assert_eq!(retry_delay(1), Duration::from_secs(2));
        assert_eq!(retry_delay(2), Duration::from_secs(4));
        assert_eq!(retry_delay(50), MAX_RETRY_DELAY);
    }
}
