//! Tech packs as a front end asks for them: a request built from what a user gives (a product
//! name, a category, photos per view), submitted as a durable job, and run here or followed
//! while another process runs it. The CLI and the HTTP API both come through here, so the same
//! input reaches the same cache keys, lineages and jobs whichever front end sent it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use techpack_model::{
    ClaimOptions, ClassifiedError, ErrorKind, Job, JobProgress, JobState, Principal,
    ProductCategory, revision_id_from_name,
};
use techpack_pipeline::jobs::{
    EnqueueOptions, JobControl, JobRunEnd, default_worker_id, enqueue_retry_failed,
    enqueue_tech_pack, run_claimed_job,
};
use techpack_pipeline::{
    CancellationToken, ProgressEvent, TechPackOptions, TechPackRequest, TechPackResult, ViewInput,
};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::products::{is_id, product_id};
use crate::services::App;

/// One base view of a pack request: its name, its photo and, optionally, a known real size.
#[derive(Debug, Clone)]
pub struct ViewUpload {
    /// The view: front, back, side …
    pub view: String,
    /// The photo's bytes (JPEG, PNG or WebP).
    pub photo: Bytes,
    /// A known real size for measurements, e.g. `height=70cm`.
    pub reference: Option<String>,
}

/// A tech pack as a user asks for it. Unset options take the settings' defaults.
#[derive(Debug, Clone, Default)]
pub struct PackInput {
    /// The product: a UUID, or a name that maps to a stable id per user.
    pub product: String,
    /// The product category (`apparel`, `bags` …); default `auto` (detected from each photo).
    pub category: Option<String>,
    /// The base views, in display order.
    pub views: Vec<ViewUpload>,
    /// The view whose photo is the pack's primary image (default: the first).
    pub primary_view: Option<String>,
    /// Close-ups per view.
    pub closeups_per_view: Option<usize>,
    /// The name of the pack's collection.
    pub collection_name: Option<String>,
    /// Regenerate everything as new versions, even when nothing changed.
    pub force: bool,
    /// Options shared with a retry.
    pub run: RunOptions,
}

/// How a pack's job runs, for a new pack and a retry alike.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The generator (`local`, `openai`); default the settings' provider.
    pub provider: Option<String>,
    /// Provider calls in flight at once.
    pub concurrency: Option<usize>,
    /// Mirror analyses into the legacy table (default on).
    pub legacy_dual_write: Option<bool>,
    /// Runs of the job before it is given up.
    pub max_attempts: Option<i32>,
    /// The caller's key for the request (an API client's `Idempotency-Key`): sending the same
    /// key again returns the same job instead of a new one.
    pub idempotency_key: Option<String>,
}

/// A job just queued for a pack (or the identical one it joined), and the provider it runs
/// with.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The job.
    pub job: Job,
    /// Whether the job existed already: an identical request was queued or running (or the
    /// idempotency key named it), so this one follows it and is not charged again.
    pub joined: bool,
    /// The provider's name.
    pub provider: String,
}

/// What a front end sees of a job while it waits for it.
#[derive(Debug, Clone)]
pub enum JobUpdate {
    /// A step of the run in this process started, finished or failed.
    Step(ProgressEvent),
    /// Another process runs the job (or it waits its turn): its state and progress as its row
    /// says, sent when they change.
    Elsewhere {
        /// The job's state.
        state: JobState,
        /// Its recorded progress.
        progress: JobProgress,
        /// The worker that holds it, when one does.
        worker_id: Option<String>,
    },
}

/// Where a job's updates go.
pub type UpdateSender = tokio::sync::mpsc::UnboundedSender<JobUpdate>;

/// How a job that a front end waits for ended.
#[derive(Debug, Clone)]
pub struct JobEnd {
    /// The job as it ended.
    pub job: Job,
    /// The pack, when this process ran the job.
    pub result: Option<TechPackResult>,
    /// The kind of the error that stopped this process's run before it made a pack.
    pub run_failure: Option<ErrorKind>,
}

impl JobEnd {
    /// The pack's outcome: `Ok` for a job that succeeded or ended partial; otherwise an error
    /// that says what happened and what to do, with the kind a front end reports (a cancelled
    /// job, one queued for another attempt, one that failed for good).
    pub fn into_outcome(self) -> AppResult<JobEnd> {
        let job = &self.job;
        let error = |fallback: String| job.last_error.clone().unwrap_or(fallback);
        match job.state {
            JobState::Succeeded | JobState::Partial => Ok(self),
            JobState::Cancelled => Err(AppError::Job {
                message: error(format!("job {} was cancelled", job.id)),
                kind: ErrorKind::Cancelled,
            }),
            JobState::Queued | JobState::Running => Err(AppError::Job {
                message: format!(
                    "the run failed: {}; job {} is queued for attempt {} of {} (from {}): `techpack worker --exit-when-idle` runs it, `techpack jobs cancel {}` drops it",
                    error("unknown error".into()),
                    job.id,
                    job.attempts + 1,
                    job.max_attempts,
                    job.run_after.format("%H:%M:%S UTC"),
                    job.id
                ),
                kind: self.retried_failure_kind(),
            }),
            JobState::Failed => Err(AppError::Job {
                message: format!("job {} failed: {}", job.id, error("unknown error".into())),
                kind: job
                    .error_code
                    .as_deref()
                    .and_then(ErrorKind::from_name)
                    .unwrap_or(ErrorKind::Internal),
            }),
        }
    }

    /// The kind to report for a run that failed and left its job queued for another attempt:
    /// what failed when the caller can act on it (a full disk, a refused key), otherwise
    /// `Unavailable` (the job is retried).
    fn retried_failure_kind(&self) -> ErrorKind {
        self.run_failure
            .or_else(|| {
                self.result
                    .as_ref()
                    .and_then(|result| result.failed_steps().next())
                    .and_then(|step| step.error_kind)
            })
            .filter(|kind| !matches!(kind, ErrorKind::Internal | ErrorKind::Unavailable))
            .unwrap_or(ErrorKind::Unavailable)
    }
}

/// How a front end lets go of a job it runs or follows.
#[derive(Debug, Clone, Default)]
pub struct WaitControl {
    /// The person asked to stop (Ctrl-C): a run here stops at the next step boundary and the
    /// job ends `cancelled`; following a job elsewhere just stops following.
    pub interrupt: CancellationToken,
}

impl App {
    /// The tech-pack request a user's input makes: the product name mapped to its id, one
    /// revision per view (so a new photo of a view becomes a new version of that view's files),
    /// and every option checked.
    pub fn build_pack_request(
        &self,
        user_id: Uuid,
        input: &PackInput,
    ) -> AppResult<TechPackRequest> {
        let product = input.product.trim();
        if product.is_empty() {
            return Err(AppError::Invalid(
                "a tech pack needs a product: give its name or id".into(),
            ));
        }
        let product_idea_id = product_id(user_id, product);
        let category: ProductCategory = match &input.category {
            Some(category) => category
                .parse()
                .map_err(|error| AppError::Invalid(format!("{error}")))?,
            None => ProductCategory::Auto,
        };
        let views = input
            .views
            .iter()
            .map(|upload| ViewInput {
                revision_id: revision_id_from_name(user_id, product_idea_id, upload.view.trim()),
                view: upload.view.trim().to_owned(),
                photo: Arc::from(upload.photo.as_ref()),
                reference: upload.reference.clone(),
            })
            .collect();
        let defaults = &self.settings().packs;
        let options = TechPackOptions {
            collection_name: input.collection_name.clone(),
            closeups_per_view: input
                .closeups_per_view
                .unwrap_or(defaults.closeups_per_view),
            concurrency: input.run.concurrency.unwrap_or(defaults.concurrency),
            force: input.force,
            legacy_dual_write: input
                .run
                .legacy_dual_write
                .unwrap_or(defaults.legacy_dual_write),
            ..TechPackOptions::default()
        };
        Ok(TechPackRequest {
            product_idea_id,
            user_id,
            views,
            category,
            primary_view: input.primary_view.clone(),
            options,
        })
    }

    /// The provider name a run uses, checked: `Err` for an unknown name, or a provider this
    /// process cannot set up when `must_run_here` (a missing API key fails before anything is
    /// queued).
    pub fn provider_for(&self, options: &RunOptions, must_run_here: bool) -> AppResult<String> {
        let name = options
            .provider
            .clone()
            .unwrap_or_else(|| self.settings().provider.clone());
        let kind: techpack_generate::ProviderKind = name.parse()?;
        if must_run_here {
            self.providers().get(kind.as_str())?;
        }
        Ok(kind.as_str().to_owned())
    }

    /// Queues a tech pack as a job: its photos are stored first, so any worker can run it.
    /// With `must_run_here`, a provider this process cannot set up is refused first.
    pub async fn submit_pack(
        &self,
        user_id: Uuid,
        input: &PackInput,
        must_run_here: bool,
    ) -> AppResult<Submitted> {
        let provider = self.provider_for(&input.run, must_run_here)?;
        let request = self.build_pack_request(user_id, input)?;
        let enqueued = enqueue_tech_pack(
            self.store().as_ref(),
            self.blobs(),
            &request,
            &provider,
            self.enqueue_options(&input.run),
        )
        .await?;
        Ok(Submitted {
            job: enqueued.job,
            joined: enqueued.joined,
            provider,
        })
    }

    /// Queues a retry of a pack's failed steps as a job in the pack's own batch.
    pub async fn submit_retry(
        &self,
        user_id: Uuid,
        collection_id: Uuid,
        run: &RunOptions,
        must_run_here: bool,
    ) -> AppResult<Submitted> {
        let provider = self.provider_for(run, must_run_here)?;
        let defaults = &self.settings().packs;
        let options = TechPackOptions {
            concurrency: run.concurrency.unwrap_or(defaults.concurrency),
            legacy_dual_write: run.legacy_dual_write.unwrap_or(defaults.legacy_dual_write),
            ..TechPackOptions::default()
        };
        let enqueued = enqueue_retry_failed(
            self.store().as_ref(),
            user_id,
            collection_id,
            &options,
            &provider,
            self.enqueue_options(run),
        )
        .await?;
        Ok(Submitted {
            job: enqueued.job,
            joined: enqueued.joined,
            provider,
        })
    }

    fn enqueue_options(&self, run: &RunOptions) -> EnqueueOptions {
        EnqueueOptions {
            max_attempts: Some(
                run.max_attempts
                    .unwrap_or(self.settings().jobs.max_attempts),
            ),
            idempotency_key: run.idempotency_key.clone(),
        }
    }

    /// Waits for a job to end, running it in this process when it can: whenever the job is
    /// claimable (queued and due, or its runner's lease expired) it is claimed and run here,
    /// its step events going to `updates`; while another process runs it, or it waits its
    /// turn behind another run of the same product, it is followed by its row. `lease` is how
    /// long this process holds the job without a heartbeat before a worker may take it over.
    pub async fn run_or_follow(
        &self,
        user_id: Uuid,
        job_id: Uuid,
        lease: Duration,
        updates: Option<UpdateSender>,
        control: WaitControl,
    ) -> AppResult<JobEnd> {
        let principal = Principal::User(user_id);
        let claim = ClaimOptions {
            worker_id: default_worker_id(),
            lease,
            per_user_cap: u32::MAX,
            only_job: Some(job_id),
        };
        let mut shown: Option<(JobState, JobProgress, Option<String>)> = None;
        loop {
            if !control.interrupt.is_cancelled()
                && let Some((job, lease)) = self.store().claim_job(principal, &claim).await?
            {
                return self.run_here(job, lease, updates, control).await;
            }
            let job = self.store().get_job(principal, job_id).await?;
            if job.state.is_terminal() || control.interrupt.is_cancelled() {
                return Ok(JobEnd {
                    job,
                    result: None,
                    run_failure: None,
                });
            }
            let now = (job.state, job.pack_progress(), job.worker_id.clone());
            if shown.as_ref() != Some(&now) {
                if let Some(updates) = &updates {
                    let _ = updates.send(JobUpdate::Elsewhere {
                        state: now.0,
                        progress: now.1,
                        worker_id: now.2.clone(),
                    });
                }
                shown = Some(now);
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = control.interrupt.cancelled() => {}
            }
        }
    }

    /// The tech pack a person names: a collection id, a product id (its newest pack) or a
    /// product name (its newest pack).
    pub async fn find_pack(
        &self,
        user_id: Uuid,
        reference: &str,
    ) -> AppResult<techpack_model::CollectionWithFiles> {
        let principal = Principal::User(user_id);
        let reference = reference.trim();
        let id = product_id(user_id, reference);
        match techpack_pipeline::find_tech_pack(self.store().as_ref(), principal, id).await {
            Ok(pack) => Ok(pack),
            Err(techpack_pipeline::PipelineError::NotFound(_)) if !is_id(reference) => {
                Err(AppError::NotFound(format!(
                    "no tech pack of product `{reference}`: make one with `techpack generate --product {reference} --view front=PHOTO`"
                )))
            }
            Err(techpack_pipeline::PipelineError::NotFound(_)) => Err(AppError::NotFound(format!(
                "no tech pack with id {reference}, and no product with that id has one"
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// Runs a job this process claimed, its step events going to `updates`.
    async fn run_here(
        &self,
        job: Job,
        lease: techpack_model::JobLease,
        updates: Option<UpdateSender>,
        control: WaitControl,
    ) -> AppResult<JobEnd> {
        let job_id = job.id;
        let (steps, mut step_queue) = tokio::sync::mpsc::unbounded_channel();
        let forward = tokio::spawn(async move {
            while let Some(event) = step_queue.recv().await {
                if let Some(updates) = &updates {
                    let _ = updates.send(JobUpdate::Step(event));
                }
            }
        });
        let run = run_claimed_job(
            &self.job_environment(),
            job,
            lease,
            JobControl {
                progress: Some(steps),
                interrupt: control.interrupt.clone(),
                shutdown: CancellationToken::new(),
            },
        )
        .await;
        let _ = forward.await;
        match run.end {
            JobRunEnd::Ended(job) => Ok(JobEnd {
                job: *job,
                result: run.result,
                run_failure: run.error.as_ref().map(ClassifiedError::kind),
            }),
            JobRunEnd::Unrecorded { job, error } => {
                let lease_note = format!(
                    "its end could not be recorded ({error}), so job {} stays running until its lease runs out; then `techpack worker` resumes it, reusing every finished step",
                    job.id
                );
                Err(match run.error {
                    Some(failure) => AppError::Job {
                        kind: failure.kind(),
                        message: format!("the run failed: {failure}; {lease_note}"),
                    },
                    None => AppError::Job {
                        kind: error.kind(),
                        message: format!("the run finished but {lease_note}"),
                    },
                })
            }
            JobRunEnd::LeaseLost => Err(AppError::Conflict(format!(
                "job {job_id}: this process stalled past its lease and a worker took the job over; `techpack jobs show {job_id}` follows it"
            ))),
        }
    }
}

/// How often a followed job's row is read.
const FOLLOW_POLL: Duration = Duration::from_millis(250);
