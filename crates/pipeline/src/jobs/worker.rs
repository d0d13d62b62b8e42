//! `techpack worker`: claims queued jobs (and jobs whose worker died) and runs them, several
//! at once, until asked to shut down. Any number of workers on any number of machines share
//! one database: claims skip rows other workers hold, and the per-user cap is counted across
//! all of them.

use std::collections::BTreeMap;
use std::time::Duration;

use techpack_model::{ClaimOptions, Job, JobFilter, JobState, Principal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{PipelineError, PipelineResult};
use crate::jobs::runner::{JobControl, JobEnvironment, JobRun, JobRunEnd, run_claimed_job};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Recorded on the jobs it holds: host and process, so a person can tell workers apart.
    pub worker_id: String,
    /// Jobs this worker runs at once.
    pub concurrency: usize,
    /// Jobs one user may have running at once, across all workers.
    pub per_user_cap: u32,
    /// How long a claimed job stays this worker's without a heartbeat. A worker that dies
    /// loses its jobs to others after this long.
    pub lease: Duration,
    /// How long to wait for a notification before looking for jobs again.
    pub poll: Duration,
    /// Stop once nothing runs here and no job is queued (drain the queue and exit).
    pub exit_when_idle: bool,
}

impl WorkerOptions {
    /// Options for a worker called `worker_id`: 2 jobs at once, 2 per user, a 30 s lease,
    /// polling every 5 s.
    pub fn new(worker_id: impl Into<String>) -> Self {
        Self {
            worker_id: worker_id.into(),
            concurrency: 2,
            per_user_cap: 2,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(5),
            exit_when_idle: false,
        }
    }
}

/// What a worker did, reported as it happens.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    /// It claimed a job.
    Claimed {
        /// The job.
        job_id: Uuid,
        /// Its owner.
        user_id: Uuid,
        /// Which attempt this is.
        attempt: i32,
    },
    /// A job ended (or went back to the queue) in this state.
    Ended {
        /// The job.
        job_id: Uuid,
        /// Its state now.
        state: JobState,
        /// Its last error, if any.
        error: Option<String>,
    },
    /// Another worker took a job over from this one.
    LeaseLost {
        /// The job.
        job_id: Uuid,
    },
    /// Looking for jobs failed (the database is unreachable); the worker tries again.
    ClaimFailed {
        /// Why.
        error: String,
    },
}

impl std::fmt::Display for WorkerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerEvent::Claimed {
                job_id,
                user_id,
                attempt,
            } => write!(
                f,
                "job {job_id}: claimed (user {user_id}, attempt {attempt})"
            ),
            WorkerEvent::Ended {
                job_id,
                state,
                error,
            } => match error {
                Some(error) => write!(f, "job {job_id}: {state}: {error}"),
                None => write!(f, "job {job_id}: {state}"),
            },
            WorkerEvent::LeaseLost { job_id } => write!(
                f,
                "job {job_id}: another worker took it over (this one missed its heartbeats); left to it"
            ),
            WorkerEvent::ClaimFailed { error } => {
                write!(f, "looking for jobs failed: {error}; trying again")
            }
        }
    }
}

/// What a worker did in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Jobs claimed.
    pub claimed: usize,
    /// Jobs by the state they were left in (a job given back counts as `queued`).
    pub ended: BTreeMap<String, usize>,
    /// Jobs another worker took over.
    pub lost: usize,
}

/// Runs a worker until `shutdown` is cancelled (or, with `exit_when_idle`, until the queue is
/// drained). On shutdown it stops claiming, stops its jobs at their next step boundary and
/// gives them back to the queue, so another worker resumes them without charging anything
/// twice; then it returns.
pub async fn run_worker(
    environment: JobEnvironment,
    options: WorkerOptions,
    shutdown: CancellationToken,
    events: Option<tokio::sync::mpsc::UnboundedSender<WorkerEvent>>,
) -> PipelineResult<WorkerReport> {
    if options.concurrency == 0 {
        return Err(PipelineError::InvalidRequest(
            "worker concurrency must be at least 1".into(),
        ));
    }
    let claim = ClaimOptions {
        worker_id: options.worker_id.clone(),
        lease: options.lease,
        per_user_cap: options.per_user_cap,
        only_job: None,
    };
    claim
        .validate()
        .map_err(|error| PipelineError::InvalidRequest(error.to_string()))?;
    let emit = |event: WorkerEvent| {
        if let Some(events) = &events {
            let _ = events.send(event);
        }
    };
    let mut report = WorkerReport::default();
    let mut running: JoinSet<(Uuid, JobRun)> = JoinSet::new();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let mut claimed_now = false;
        let mut claim_failed = false;
        while running.len() < options.concurrency && !shutdown.is_cancelled() {
            match environment
                .store
                .claim_job(Principal::Service, &claim)
                .await
            {
                Ok(Some((job, lease))) => {
                    claimed_now = true;
                    report.claimed += 1;
                    emit(WorkerEvent::Claimed {
                        job_id: job.id,
                        user_id: job.user_id,
                        attempt: lease.attempt,
                    });
                    let environment = environment.clone();
                    let control = JobControl {
                        progress: None,
                        interrupt: CancellationToken::new(),
                        shutdown: shutdown.child_token(),
                    };
                    running.spawn(async move {
                        let job_id = job.id;
                        (
                            job_id,
                            run_claimed_job(&environment, job, lease, control).await,
                        )
                    });
                }
                Ok(None) => break,
                Err(error) => {
                    emit(WorkerEvent::ClaimFailed {
                        error: error.to_string(),
                    });
                    claim_failed = true;
                    break;
                }
            }
        }
        if options.exit_when_idle
            && running.is_empty()
            && !claimed_now
            && !claim_failed
            && queue_is_empty(&environment).await
        {
            break;
        }
        let can_claim = running.len() < options.concurrency;
        tokio::select! {
            Some(joined) = running.join_next(), if !running.is_empty() => {
                record(&mut report, &emit, joined);
            }
            waited = environment.store.wait_for_jobs(options.poll), if can_claim => {
                if let Err(error) = waited {
                    emit(WorkerEvent::ClaimFailed { error: error.to_string() });
                    tokio::time::sleep(options.poll).await;
                }
            }
            _ = shutdown.cancelled() => {}
        }
    }
    while let Some(joined) = running.join_next().await {
        record(&mut report, &emit, joined);
    }
    Ok(report)
}

/// Whether no job waits in the queue. Jobs other workers hold are theirs; a job held back by
/// the per-user cap is still queued, so a draining worker waits for it.
async fn queue_is_empty(environment: &JobEnvironment) -> bool {
    let filter = JobFilter {
        state: Some(JobState::Queued),
        product_idea_id: None,
        limit: Some(1),
    };
    matches!(
        environment.store.list_jobs(Principal::Service, &filter).await,
        Ok(queued) if queued.is_empty()
    )
}

fn record(
    report: &mut WorkerReport,
    emit: &impl Fn(WorkerEvent),
    joined: Result<(Uuid, JobRun), tokio::task::JoinError>,
) {
    let Ok((job_id, run)) = joined else {
        // A panicking run: its lease expires and another worker (or this one) resumes it.
        return;
    };
    match run.end {
        JobRunEnd::Ended(job) => {
            *report
                .ended
                .entry(job.state.as_str().to_owned())
                .or_default() += 1;
            emit(ended_event(&job));
        }
        JobRunEnd::LeaseLost => {
            report.lost += 1;
            emit(WorkerEvent::LeaseLost { job_id });
        }
    }
}

fn ended_event(job: &Job) -> WorkerEvent {
    WorkerEvent::Ended {
        job_id: job.id,
        state: job.state,
        error: job.last_error.clone(),
    }
}

/// A worker id for this process: host name and process id.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}
