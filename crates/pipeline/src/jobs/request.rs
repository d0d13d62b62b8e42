//! What a generation job asks for, as stored in `generation_jobs.request`, and how a request
//! becomes a job. The photos are stored as blobs before the job is queued, so any worker on
//! any machine can run it from the job row alone.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use techpack_blobs::{BlobContent, BlobStore};
use techpack_model::{Job, NewJob, Principal, ProductCategory};
use techpack_store::TechFileStore;
use uuid::Uuid;

use crate::error::{PipelineError, PipelineResult};
use crate::request::check_tech_pack;
use crate::request::{StoredView, TechPackOptions, TechPackRequest};
use crate::run::{load_views, store_photo};

/// The version of [`JobRequest`]'s shape; a worker refuses shapes it does not know.
pub const JOB_REQUEST_SCHEMA: &str = "techpack.job/1";

/// A generation job's request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRequest {
    /// Always [`JOB_REQUEST_SCHEMA`].
    pub schema: String,
    /// The provider to run with, by name (`local`, `openai`); the worker configures it.
    pub provider: String,
    /// The run's generation batch: every attempt of the job continues it.
    pub batch_id: Uuid,
    /// Provider calls in flight at once.
    pub concurrency: usize,
    /// Mirror analyses into the legacy table.
    pub legacy_dual_write: bool,
    /// What to do.
    pub work: JobWork,
}

/// The work of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobWork {
    /// Make (or finish, or reuse) a tech pack: `techpack generate`.
    Generate {
        /// The product category.
        category: ProductCategory,
        /// The view whose photo is the primary image.
        primary_view: Option<String>,
        /// The collection's name.
        collection_name: Option<String>,
        /// Close-ups per view.
        closeups_per_view: usize,
        /// Regenerate everything as new versions.
        force: bool,
        /// The views, their photos already stored.
        views: Vec<StoredView>,
    },
    /// Redo the failed steps of a pack: `techpack generate --retry-failed`.
    RetryFailed {
        /// The pack's collection.
        collection_id: Uuid,
    },
}

impl JobRequest {
    /// Reads a job's request; an unknown shape is an invalid request, not a crash.
    pub fn from_job(job: &Job) -> PipelineResult<Self> {
        let request: Self = serde_json::from_value(job.request.clone()).map_err(|error| {
            PipelineError::InvalidRequest(format!(
                "job {} has a request this build cannot read: {error}",
                job.id
            ))
        })?;
        if request.schema != JOB_REQUEST_SCHEMA {
            return Err(PipelineError::InvalidRequest(format!(
                "job {} has request schema `{}`; this build runs `{JOB_REQUEST_SCHEMA}`",
                job.id, request.schema
            )));
        }
        Ok(request)
    }

    /// The options of the run, from the request.
    pub fn options(&self) -> TechPackOptions {
        let (collection_name, closeups_per_view, force) = match &self.work {
            JobWork::Generate {
                collection_name,
                closeups_per_view,
                force,
                ..
            } => (collection_name.clone(), *closeups_per_view, *force),
            JobWork::RetryFailed { .. } => {
                (None, TechPackOptions::default().closeups_per_view, false)
            }
        };
        TechPackOptions {
            collection_name,
            closeups_per_view,
            concurrency: self.concurrency,
            force,
            legacy_dual_write: self.legacy_dual_write,
            batch_id: Some(self.batch_id),
            ..TechPackOptions::default()
        }
    }

    /// The tech-pack request of a `Generate` job, its photos read back from the blob store.
    pub async fn tech_pack_request(
        &self,
        job: &Job,
        blobs: &BlobStore,
    ) -> PipelineResult<Option<TechPackRequest>> {
        let JobWork::Generate {
            category,
            primary_view,
            views,
            ..
        } = &self.work
        else {
            return Ok(None);
        };
        let inputs = load_views(blobs, job.user_id, views).await?;
        Ok(Some(TechPackRequest {
            product_idea_id: job.product_idea_id,
            user_id: job.user_id,
            views: inputs,
            category: *category,
            primary_view: primary_view.clone(),
            options: self.options(),
        }))
    }
}

/// How a request becomes a job: who may join it, and how often it is tried.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Runs of the job before it is given up (default [`techpack_model::DEFAULT_MAX_ATTEMPTS`]).
    pub max_attempts: Option<i32>,
    /// The caller's key for the request (an API client's `Idempotency-Key`): the same key
    /// always returns the same job.
    pub idempotency_key: Option<String>,
}

/// A job as queued: new, or the queued or running job of an identical request that this one
/// joined.
#[derive(Debug, Clone)]
pub struct Enqueued {
    /// The job.
    pub job: Job,
    /// Whether it existed before (an identical request is running or queued, or the caller's
    /// idempotency key named it): the caller follows it instead of a new one.
    pub joined: bool,
}

/// Queues a tech pack as a job: checks the request, stores its photos, and writes the job row.
/// `provider` names the provider the worker is to use; a run that fails is tried again until
/// `max_attempts` runs were made. An identical request of the same user that is queued or
/// running is joined instead (one job, one charge): identity is the request's key — its
/// product, views (revision, photo content, reference size), category, options and provider,
/// not the moment it was sent.
pub async fn enqueue_tech_pack(
    store: &dyn TechFileStore,
    blobs: &BlobStore,
    request: &TechPackRequest,
    provider: &str,
    options: EnqueueOptions,
) -> PipelineResult<Enqueued> {
    crate::request::validate(request)?;
    let mut views = Vec::with_capacity(request.views.len());
    let mut photos = Vec::with_capacity(request.views.len());
    for view in &request.views {
        let blob = store_photo(blobs, request.user_id, view).await?;
        views.push(StoredView {
            view: view.view.trim().to_owned(),
            revision_id: view.revision_id,
            photo_key: blob.key.clone(),
            photo_sha256: blob.sha256.clone(),
            reference: view.reference.clone(),
        });
        photos.push((blob, view.photo.clone()));
    }
    let pack_options = &request.options;
    let job_request = JobRequest {
        schema: JOB_REQUEST_SCHEMA.into(),
        provider: provider.into(),
        batch_id: pack_options.batch_id.unwrap_or_else(Uuid::now_v7),
        concurrency: pack_options.concurrency,
        legacy_dual_write: pack_options.legacy_dual_write,
        work: JobWork::Generate {
            category: request.category,
            primary_view: request.primary_view.clone(),
            collection_name: pack_options.collection_name.clone(),
            closeups_per_view: pack_options.closeups_per_view,
            force: pack_options.force,
            views,
        },
    };
    let enqueued = enqueue(
        store,
        request.user_id,
        request.product_idea_id,
        None,
        &options,
        &job_request,
    )
    .await?;
    // The job row names the photos now: cleanup keeps them; put back any it removed before.
    for (blob, photo) in photos {
        let content = BlobContent::Bytes(Bytes::copy_from_slice(&photo));
        blobs
            .ensure_stored(request.user_id, &blob, &content)
            .await?;
    }
    Ok(enqueued)
}

/// Queues a retry of a pack's failed steps as a job, in the pack's own batch. A retry of the
/// same pack that is queued or running is joined instead.
pub async fn enqueue_retry_failed(
    store: &dyn TechFileStore,
    user_id: Uuid,
    collection_id: Uuid,
    pack_options: &TechPackOptions,
    provider: &str,
    options: EnqueueOptions,
) -> PipelineResult<Enqueued> {
    let collection = store
        .get_collection(Principal::User(user_id), collection_id)
        .await?;
    check_tech_pack(&collection)?;
    let batch_id = collection.generation_batch_id.ok_or_else(|| {
        PipelineError::Corrupt(format!(
            "collection {collection_id} has no generation batch"
        ))
    })?;
    if pack_options.concurrency == 0 {
        return Err(PipelineError::InvalidRequest(
            "concurrency must be at least 1".into(),
        ));
    }
    let job_request = JobRequest {
        schema: JOB_REQUEST_SCHEMA.into(),
        provider: provider.into(),
        batch_id,
        concurrency: pack_options.concurrency,
        legacy_dual_write: pack_options.legacy_dual_write,
        work: JobWork::RetryFailed { collection_id },
    };
    enqueue(
        store,
        user_id,
        collection.product_idea_id,
        Some(collection_id),
        &options,
        &job_request,
    )
    .await
}

impl JobRequest {
    /// The request's identity for `product_idea_id`: a hash of what it asks for — the product,
    /// the work (photos by content), the provider and the legacy mirroring — without what does
    /// not change its result (its batch, its concurrency), so identical requests have one key.
    pub fn request_key(&self, product_idea_id: Uuid) -> String {
        let mut identity = self.clone();
        identity.batch_id = Uuid::nil();
        identity.concurrency = 0;
        if let JobWork::Generate { views, .. } = &mut identity.work {
            for view in views.iter_mut() {
                // The key is the content's, under the same owner: the hash says it all.
                view.photo_key.clear();
            }
        }
        let mut hasher = Sha256::new();
        hasher.update(product_idea_id.as_bytes());
        hasher.update(serde_json::to_vec(&identity).unwrap_or_default());
        format!("tech_pack:{}", hex::encode(hasher.finalize()))
    }
}

async fn enqueue(
    store: &dyn TechFileStore,
    user_id: Uuid,
    product_idea_id: Uuid,
    collection_id: Option<Uuid>,
    options: &EnqueueOptions,
    request: &JobRequest,
) -> PipelineResult<Enqueued> {
    let value = serde_json::to_value(request)
        .map_err(|error| PipelineError::Corrupt(format!("serialising a job request: {error}")))?;
    let mut job = NewJob::tech_pack(user_id, product_idea_id, value);
    job.collection_id = collection_id;
    if let Some(max_attempts) = options.max_attempts {
        job.max_attempts = max_attempts;
    }
    job.request_key = Some(request.request_key(product_idea_id));
    job.idempotency_key = options.idempotency_key.clone();
    job.batch_id = Some(request.batch_id);
    let (job, joined) = store.enqueue_or_join(Principal::User(user_id), job).await?;
    Ok(Enqueued { job, joined })
}
