//! `techpack worker`: claims queued jobs (and jobs whose worker died) and runs them, several
//! at once, until asked to shut down. Any number of workers on any number of machines share
//! one database: claims skip rows other workers hold, and the per-user cap is counted across
//! all of them.

use std::collections::{BTreeMap, HashMap};
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
    /// A job's run ended but the store refused to record it; its lease runs out and a worker
    /// resumes it.
    Unrecorded {
        /// The job.
        job_id: Uuid,
        /// Why.
        error: String,
    },
    /// A draining worker waits for a job whose runner it has not seen heartbeating: to see
    /// that the runner is alive, or to take the job over once its lease runs out.
    WaitingForLease {
        /// The job.
        job_id: Uuid,
        /// The runner that holds it.
        worker_id: Option<String>,
        /// When its lease runs out.
        until: Option<chrono::DateTime<chrono::Utc>>,
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
            WorkerEvent::Unrecorded { job_id, error } => write!(
                f,
                "job {job_id}: its end could not be recorded ({error}); it is resumed once its lease runs out"
            ),
            WorkerEvent::WaitingForLease {
                job_id,
                worker_id,
                until,
            } => write!(
                f,
                "job {job_id}: waiting to see its runner {} renew its lease, or to take the job over when the lease runs out{}",
                worker_id.as_deref().unwrap_or("(unknown)"),
                until
                    .map(|until| format!(" at {}", until.format("%H:%M:%S%.3f UTC")))
                    .unwrap_or_default()
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
    // The heartbeat each running job of another runner had when this worker first saw it.
    let mut heartbeats: HashMap<Uuid, Option<chrono::DateTime<chrono::Utc>>> = HashMap::new();
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
        if options.exit_when_idle && running.is_empty() && !claimed_now && !claim_failed {
            match idle_state(&environment, &mut heartbeats).await {
                Idle::Busy => {}
                Idle::Done => break,
                Idle::Unsure(jobs) => {
                    // Running jobs whose runners have not been seen renewing their leases: a
                    // runner that died leaves its job running until the lease runs out, so
                    // wait to see a heartbeat or to take the job over.
                    for job in &jobs {
                        emit(WorkerEvent::WaitingForLease {
                            job_id: job.id,
                            worker_id: job.worker_id.clone(),
                            until: job.lease_expires_at,
                        });
                    }
                    let soonest = jobs
                        .iter()
                        .filter_map(|job| job.lease_expires_at)
                        .min()
                        .map(|until| (until - chrono::Utc::now()).to_std().unwrap_or_default())
                        .unwrap_or(options.poll)
                        .min(options.poll)
                        .max(Duration::from_millis(10));
                    tokio::select! {
                        _ = tokio::time::sleep(soonest) => {}
                        _ = shutdown.cancelled() => {}
                    }
                    continue;
                }
            }
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

/// What a draining worker (`--exit_when_idle`) sees when it has nothing to run.
enum Idle {
    /// A job waits in the queue (a job held back by the per-user cap or its product's
    /// running job included): keep looking.
    Busy,
    /// Running jobs whose runners have not been seen heartbeating since this worker first
    /// looked: they may have died, and their jobs are taken over once their leases run out.
    Unsure(Vec<Job>),
    /// Nothing is queued, and every running job's runner has renewed its lease since: done.
    Done,
}

async fn idle_state(
    environment: &JobEnvironment,
    heartbeats: &mut HashMap<Uuid, Option<chrono::DateTime<chrono::Utc>>>,
) -> Idle {
    let jobs = |state| JobFilter {
        state: Some(state),
        product_idea_id: None,
        limit: Some(i64::from(techpack_model::MAX_PAGE_SIZE)),
    };
    let store = &environment.store;
    match store
        .list_jobs(Principal::Service, &jobs(JobState::Queued))
        .await
    {
        Ok(queued) if queued.is_empty() => {}
        _ => return Idle::Busy,
    }
    let Ok(running) = store
        .list_jobs(Principal::Service, &jobs(JobState::Running))
        .await
    else {
        return Idle::Busy;
    };
    let unsure: Vec<Job> = running
        .into_iter()
        .filter(|job| {
            let first_seen = *heartbeats.entry(job.id).or_insert(job.heartbeat_at);
            // Alive: its runner renewed the lease since this worker first saw the job.
            job.heartbeat_at <= first_seen
        })
        .collect();
    if unsure.is_empty() {
        Idle::Done
    } else {
        Idle::Unsure(unsure)
    }
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
        JobRunEnd::Unrecorded { error, .. } => {
            *report.ended.entry("unrecorded".to_owned()).or_default() += 1;
            emit(WorkerEvent::Unrecorded {
                job_id,
                error: error.to_string(),
            });
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
