//! The orchestrator: plans a tech pack as a graph (each view's analysis, then that view's
//! close-ups and sketch as soon as its analysis is done) and runs it with bounded concurrency.
//!
//! Every step goes through the same stages:
//! 1. **cache**: the slot's latest completed file made from the same inputs (photo hash,
//!    provider fingerprint, category, reference) is reused at no charge; for an analysis the
//!    legacy `revision_vision_analysis` table is consulted next;
//! 2. **row**: a `processing` row is created with an idempotency key per (batch, view, slot), or
//!    — when the slot already has a file made from other inputs, or `force` — a new *version*
//!    of that file; a processing or failed row of the same inputs (an interrupted or failed
//!    run) is filled in place instead, so a rerun never duplicates;
//! 3. **generate** under a concurrency permit, calling the provider once (it owns the retries);
//! 4. **store** the output blob(s) and complete the row with its credits, or mark it failed
//!    with the error and no credits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use techpack_blobs::{BlobContent, BlobStore, StoredBlob};
use techpack_generate::{
    Analysis, Closeup, CloseupShot, GenerateError, Generated, Provider, Sketch, ViewPhoto,
};
use techpack_model::{
    ClassifiedError, Collection, CollectionItemInput, CollectionProgress, CollectionStatus,
    CollectionType, ErrorKind, FileChanges, FileFilter, FileStatus, FileType, NewCollection,
    NewTechFile, Principal, ProductCategory, TechFile,
};
use techpack_store::{NewLegacyAnalysis, TechFileStore};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::batch::Batcher;
use crate::error::{PipelineError, PipelineResult};
use crate::progress::{ProgressCounts, ProgressEvent, ProgressSender, StepId, StepKind};
use crate::request::{
    StepOrigin, StepReport, StoredView, TechPackOptions, TechPackRequest, TechPackResult,
    ViewInput, check_tech_pack, validate,
};

mod cache;
mod credits;
mod graph;
mod manifest;
mod photos;
mod step;
mod versions;

use self::cache::*;
use self::graph::*;
pub(crate) use self::photos::{load_views, store_photo};
use self::step::*;
use self::versions::*;

/// Section of the base-view analyses in a pack's collection.
pub const SECTION_BASE_VIEWS: &str = "base_views";
/// Section of the close-ups.
pub const SECTION_CLOSEUPS: &str = "closeups";
/// Section of the sketches.
pub const SECTION_SKETCHES: &str = "sketches";
/// Section of the `complete_pack` manifest.
pub const SECTION_MANIFEST: &str = "complete_pack";
/// In-progress updates of a collection's percentage are written at most this often (the
/// final status always is).
pub const PROGRESS_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);
/// The error recorded for a step a stopped run did not start.
const CANCELLED_STEP: &str = "cancelled: the run stopped before this step ran";
/// The collection name when the request gives none.
pub const DEFAULT_COLLECTION_NAME: &str = "Tech pack";
/// The key in an analysis written to the legacy table that names the tech file it mirrors, so a
/// legacy import does not copy our own dual writes back.
pub const LEGACY_LINK_FIELD: &str = "techpack_file_id";

/// What a run records about its request in the collection's metadata, so `--retry-failed`
/// can redo the failed steps from the collection alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecordedRequest {
    pub category: String,
    pub closeups_per_view: usize,
    pub primary_view: String,
    pub provider: String,
    pub fingerprint: String,
    pub views: Vec<StoredView>,
}

/// Runs tech-pack generation against one store, blob store and provider.
#[derive(Clone)]
pub struct Pipeline {
    store: Arc<dyn TechFileStore>,
    blobs: BlobStore,
    provider: Arc<dyn Provider>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("store", &self.store.backend())
            .field("provider", &self.provider.name())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline writing to `store` and `blobs` with `provider`.
    pub fn new(
        store: Arc<dyn TechFileStore>,
        blobs: BlobStore,
        provider: Arc<dyn Provider>,
    ) -> Self {
        Self {
            store,
            blobs,
            provider,
        }
    }

    /// The metadata store.
    pub fn store(&self) -> &Arc<dyn TechFileStore> {
        &self.store
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    /// Makes (or finishes, or reuses) the complete tech pack of a request: the specification's
    /// `generateCompleteTechPack`. Provider failures of single steps do not fail the run: the
    /// result's status is `partial` (or `failed` when nothing succeeded) and the failed steps
    /// carry their errors. Rerunning an identical request continues the same collection and
    /// redoes only what is not finished.
    pub async fn generate(
        &self,
        request: TechPackRequest,
        progress: Option<ProgressSender>,
    ) -> PipelineResult<TechPackResult> {
        self.run(request, None, progress).await
    }

    /// Redoes the failed (and unfinished) steps of a pack's collection, from the photos and
    /// options the collection recorded; finished steps are reused at no charge. `options`
    /// supplies concurrency, retries and legacy dual write; close-ups per view and the
    /// collection name come from the collection.
    pub async fn retry_failed(
        &self,
        user_id: Uuid,
        collection_id: Uuid,
        options: TechPackOptions,
        progress: Option<ProgressSender>,
    ) -> PipelineResult<TechPackResult> {
        let principal = Principal::User(user_id);
        let collection = self.store.get_collection(principal, collection_id).await?;
        check_tech_pack(&collection)?;
        let recorded: RecordedRequest =
            serde_json::from_value(collection.metadata["request"].clone()).map_err(|error| {
                PipelineError::Corrupt(format!(
                    "collection {collection_id} has no recorded request: {error}"
                ))
            })?;
        let fingerprint = self.provider.fingerprint();
        if recorded.fingerprint != fingerprint {
            return Err(PipelineError::InvalidRequest(format!(
                "collection {collection_id} was made with provider `{}` ({}); retry it with the same provider and settings",
                recorded.provider, recorded.fingerprint
            )));
        }
        let category: ProductCategory = recorded
            .category
            .parse()
            .map_err(|error| PipelineError::Corrupt(format!("recorded category: {error}")))?;
        let views = load_views(&self.blobs, user_id, &recorded.views).await?;
        let request = TechPackRequest {
            product_idea_id: collection.product_idea_id,
            user_id,
            views,
            category,
            primary_view: Some(recorded.primary_view),
            options: TechPackOptions {
                collection_name: Some(collection.name.clone()),
                closeups_per_view: recorded.closeups_per_view,
                force: false,
                ..options
            },
        };
        self.run(request, Some(collection), progress).await
    }

    async fn run(
        &self,
        request: TechPackRequest,
        resume: Option<Collection>,
        progress: Option<ProgressSender>,
    ) -> PipelineResult<TechPackResult> {
        let started = Instant::now();
        validate(&request)?;
        let principal = Principal::User(request.user_id);
        let fingerprint = self.provider.fingerprint();
        let options = request.options.clone();
        let collection_name = options
            .collection_name
            .clone()
            .unwrap_or_else(|| DEFAULT_COLLECTION_NAME.to_owned());
        let primary_view = request
            .primary_view
            .clone()
            .unwrap_or_else(|| request.views[0].view.clone());

        // The photos are stored first: each analysis file points at its photo's blob, and a
        // later `--retry-failed` reads them back from there.
        let mut views = Vec::with_capacity(request.views.len());
        let photo_blobs = futures::future::try_join_all(
            request
                .views
                .iter()
                .map(|input| store_photo(&self.blobs, request.user_id, input)),
        )
        .await?;
        for ((index, input), photo_blob) in request.views.iter().enumerate().zip(photo_blobs) {
            let cache_key = view_cache_key(&request, input, &photo_blob.sha256, &fingerprint);
            views.push(Arc::new(ViewState {
                index,
                input: input.clone(),
                photo_blob,
                cache_key,
            }));
        }
        let recorded = RecordedRequest {
            category: request.category.as_str().to_owned(),
            closeups_per_view: options.closeups_per_view,
            primary_view: primary_view.clone(),
            provider: self.provider.name().to_owned(),
            fingerprint: fingerprint.clone(),
            views: views
                .iter()
                .map(|view| StoredView {
                    view: view.input.view.clone(),
                    revision_id: view.input.revision_id,
                    photo_key: view.photo_blob.key.clone(),
                    photo_sha256: view.photo_blob.sha256.clone(),
                    reference: view.input.reference.clone(),
                })
                .collect(),
        };
        let pack_key = pack_key(&request, &collection_name, &views);

        // Which collection the run fills, and what the product's slots hold already: two
        // independent round trips, made at once.
        let find_collection = async {
            let found = match resume {
                Some(collection) => (collection, true),
                None => {
                    match self
                        .find_pack_collection(
                            principal,
                            request.product_idea_id,
                            &pack_key,
                            options.force,
                            options.batch_id,
                        )
                        .await?
                    {
                        Some(collection) => (collection, true),
                        None => {
                            let mut new = NewCollection::new(
                                request.user_id,
                                request.product_idea_id,
                                collection_name.clone(),
                                CollectionType::TechPackV2,
                            );
                            new.description = Some(format!(
                                "{} view(s), up to {} close-up(s) each, {} category, made by {}",
                                views.len(),
                                options.closeups_per_view,
                                request.category,
                                self.provider.name()
                            ));
                            new.generation_batch_id =
                                Some(options.batch_id.unwrap_or_else(Uuid::now_v7));
                            new.metadata = json!({
                                "pack_key": pack_key,
                                "provider": self.provider.name(),
                                "fingerprint": fingerprint,
                                "primary_image": views.iter().find(|v| v.input.view == primary_view).map(|v| v.photo_blob.key.clone()),
                                "request": recorded,
                            });
                            (
                                self.store
                                    .create_tech_file_collection(principal, new)
                                    .await?,
                                false,
                            )
                        }
                    }
                }
            };
            Ok::<_, PipelineError>(found)
        };
        let (found, existing) = tokio::join!(
            find_collection,
            self.latest_files_by_slot(principal, request.product_idea_id)
        );
        let (collection, resumed) = found?;
        let existing = existing?;
        // The collection records the photos (and the job, when there is one): from here on
        // cleanup keeps them, so put back any it removed before that row existed.
        futures::future::try_join_all(views.iter().map(|view| async move {
            let content = BlobContent::Bytes(Bytes::copy_from_slice(&view.input.photo));
            self.blobs
                .ensure_stored(request.user_id, &view.photo_blob, &content)
                .await
        }))
        .await?;
        let own = if resumed {
            self.collection_files_by_slot(principal, collection.id)
                .await?
        } else {
            HashMap::new()
        };
        let batch_id = collection.generation_batch_id.ok_or_else(|| {
            PipelineError::Corrupt(format!(
                "collection {} has no generation batch",
                collection.id
            ))
        })?;

        let initial_total = views.len() * (2 + options.closeups_per_view);
        let completions = Batcher::spawn({
            let store = self.store.clone();
            move |items| {
                let store = store.clone();
                async move { store.complete_tech_files(principal, items).await }
            }
        });
        let collection_adds = Batcher::spawn({
            let store = self.store.clone();
            let collection_id = collection.id;
            move |items: Vec<CollectionItemInput>| {
                let store = store.clone();
                async move {
                    let added = items.len();
                    store
                        .add_files_to_collection(principal, collection_id, items)
                        .await
                        .map(|_| vec![(); added])
                }
            }
        });
        let (percentages, percentage_updates) = tokio::sync::watch::channel(-1);
        let writer_done = CancellationToken::new();
        let progress_writer = tokio::spawn(write_progress_in_background(
            self.store.clone(),
            principal,
            collection.id,
            percentage_updates,
            writer_done.clone(),
        ));
        let shared = Arc::new(Shared {
            resumed_collection: resumed,
            completions,
            collection_adds,
            store: self.store.clone(),
            blobs: self.blobs.clone(),
            provider: self.provider.clone(),
            principal,
            user_id: request.user_id,
            product_idea_id: request.product_idea_id,
            category: request.category,
            batch_id,
            collection_id: collection.id,
            semaphore: Semaphore::new(options.concurrency),
            options: options.clone(),
            existing,
            own,
            progress,
            tally: std::sync::Mutex::new(Tally {
                total: initial_total,
                ..Tally::default()
            }),
            percentages,
            started,
        });
        shared.emit_now(|counts| ProgressEvent::Started {
            collection_id: collection.id,
            batch_id,
            counts,
        });
        // The collection turns `in_progress` while the first provider calls are under way.
        let _ = shared.percentages.send(0);
        let graph = run_graph(&shared, &views).await;
        // The background writer's last write lands before the final status.
        writer_done.cancel();
        let _ = progress_writer.await;
        let reports = match graph {
            Ok(reports) => reports,
            Err(error) => {
                // Best effort: the run cannot go on (the store or a task failed); leave the
                // collection visibly failed rather than forever in progress.
                let _ = shared.write_status(CollectionStatus::Failed).await;
                return Err(error);
            }
        };

        let counts = shared.counts_now();
        let status = if counts.done == counts.total {
            CollectionStatus::Completed
        } else if counts.done == 0 {
            CollectionStatus::Failed
        } else {
            CollectionStatus::Partial
        };
        // The manifest and the final status are independent writes: made at once, they wait
        // for one commit instead of two in a row. A crash between them leaves a finished
        // collection whose manifest the next run of the same request writes.
        let (manifest, marked) = tokio::join!(
            shared.write_manifest(&collection_name, &primary_view, status, &views, &reports),
            shared.write_status(status)
        );
        let manifest = manifest?;
        marked?;
        let counts = shared.emit_now(|counts| ProgressEvent::Finished { status, counts });
        let collection = self.store.get_collection(principal, collection.id).await?;

        let mut result = TechPackResult {
            collection_id: collection.id,
            batch_id,
            product_idea_id: request.product_idea_id,
            resumed_collection: resumed,
            status,
            completion_percentage: counts.percentage(),
            credits_used: counts.credits_used,
            collection_credits: collection.total_credits,
            base_views: Vec::new(),
            closeups: Vec::new(),
            sketches: Vec::new(),
            manifest: Some(manifest),
            blocked: Vec::new(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        for report in reports {
            let list = match (&report.origin, &report.step.kind) {
                (StepOrigin::Blocked | StepOrigin::Cancelled, _) => &mut result.blocked,
                (_, StepKind::Analysis) => &mut result.base_views,
                (_, StepKind::Closeup { .. }) => &mut result.closeups,
                (_, StepKind::Sketch) => &mut result.sketches,
            };
            list.push(report);
        }
        let order = |report: &StepReport| {
            let view = views
                .iter()
                .position(|v| v.input.view == report.step.view)
                .unwrap_or(usize::MAX);
            let index = match report.step.kind {
                StepKind::Closeup { index, .. } => index,
                _ => 0,
            };
            (view, index)
        };
        result.base_views.sort_by_key(order);
        result.closeups.sort_by_key(order);
        result.sketches.sort_by_key(order);
        result.blocked.sort_by_key(order);
        Ok(result)
    }

    /// The collection of the run's own batch (an earlier attempt of the same job), else the
    /// newest tech-pack collection of the product made from the same inputs, unless forced.
    async fn find_pack_collection(
        &self,
        principal: Principal,
        product: Uuid,
        pack_key: &str,
        force: bool,
        batch_id: Option<Uuid>,
    ) -> PipelineResult<Option<Collection>> {
        let collections = self
            .store
            .list_collections(principal, Some(product))
            .await?;
        if let Some(batch_id) = batch_id
            && let Some(own) = collections.iter().find(|collection| {
                collection.collection_type == CollectionType::TechPackV2
                    && collection.generation_batch_id == Some(batch_id)
            })
        {
            return Ok(Some(own.clone()));
        }
        if force {
            return Ok(None);
        }
        Ok(collections.into_iter().find(|collection| {
            collection.collection_type == CollectionType::TechPackV2
                && collection.metadata["pack_key"].as_str() == Some(pack_key)
                && collection.generation_batch_id.is_some()
        }))
    }

    /// The files a collection holds, by the slot each fills.
    async fn collection_files_by_slot(
        &self,
        principal: Principal,
        collection_id: Uuid,
    ) -> PipelineResult<HashMap<SlotKey, TechFile>> {
        let pack = self
            .store
            .get_collection_with_files(principal, collection_id)
            .await?;
        Ok(pack
            .items
            .into_iter()
            .filter_map(|(_, file)| Some((slot_key_of(&file)?, file)))
            .collect())
    }

    /// The latest version of every file of the product, by the slot it fills.
    async fn latest_files_by_slot(
        &self,
        principal: Principal,
        product: Uuid,
    ) -> PipelineResult<HashMap<SlotKey, TechFile>> {
        let mut slots: HashMap<SlotKey, TechFile> = HashMap::new();
        let mut filter = FileFilter {
            product_idea_id: Some(product),
            limit: Some(500),
            ..FileFilter::default()
        };
        loop {
            let page = self.store.get_latest_tech_files(principal, &filter).await?;
            for file in page.files {
                let Some(key) = slot_key_of(&file) else {
                    continue;
                };
                // Two lineages can claim one slot (a legacy import beside generated files):
                // the most recently changed one is the one to continue.
                match slots.get(&key) {
                    Some(current) if current.updated_at >= file.updated_at => {}
                    _ => {
                        slots.insert(key, file);
                    }
                }
            }
            match page.next {
                Some(next) => filter.after = Some(next),
                None => break,
            }
        }
        Ok(slots)
    }
}

struct ViewState {
    index: usize,
    input: ViewInput,
    photo_blob: StoredBlob,
    cache_key: String,
}

#[derive(Debug, Default, Clone)]
struct Tally {
    done: usize,
    failed: usize,
    total: usize,
    credits_used: i64,
}

impl Tally {
    fn counts(&self, started: Instant) -> ProgressCounts {
        ProgressCounts {
            done: self.done,
            failed: self.failed,
            total: self.total,
            credits_used: self.credits_used,
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
    }
}

struct Shared {
    store: Arc<dyn TechFileStore>,
    blobs: BlobStore,
    provider: Arc<dyn Provider>,
    principal: Principal,
    user_id: Uuid,
    product_idea_id: Uuid,
    category: ProductCategory,
    batch_id: Uuid,
    collection_id: Uuid,
    semaphore: Semaphore,
    options: TechPackOptions,
    /// The latest version of each of the product's slots: what a new version continues.
    existing: HashMap<SlotKey, TechFile>,
    /// The files a resumed collection already holds, by slot: a retry keeps what it finished
    /// even when a later run of the product made a newer version elsewhere.
    own: HashMap<SlotKey, TechFile>,
    progress: Option<ProgressSender>,
    tally: std::sync::Mutex<Tally>,
    /// The latest completion percentage, for the background progress writer.
    percentages: tokio::sync::watch::Sender<i32>,
    started: Instant,
    /// Whether the collection existed before this run (a rerun, a retry, a job's next attempt).
    resumed_collection: bool,
    /// Completes step rows in batches.
    completions: Batcher<(Uuid, FileChanges), TechFile>,
    /// Adds files to the run's collection in batches.
    collection_adds: Batcher<CollectionItemInput, ()>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.options
            .stop
            .as_ref()
            .is_some_and(|stop| stop.is_cancelled())
    }

    /// Resolves when the run is asked to stop; never, for a run without a stop token.
    async fn stop_requested(&self) {
        match &self.options.stop {
            Some(stop) => stop.cancelled().await,
            None => std::future::pending().await,
        }
    }

    fn emit(&self, event: ProgressEvent) {
        if let Some(sender) = &self.progress {
            // A reader that went away must not stop the run.
            let _ = sender.send(event);
        }
    }

    /// Writes the run's final (or failed) status with its percentage and the steps it planned.
    async fn write_status(&self, status: CollectionStatus) -> PipelineResult<()> {
        let counts = self.counts_now();
        let progress = CollectionProgress {
            completion_percentage: counts.percentage(),
            status,
            planned_steps: i32::try_from(counts.total).ok(),
        };
        self.store
            .update_collection_progress(self.principal, self.collection_id, progress)
            .await?;
        Ok(())
    }
}
