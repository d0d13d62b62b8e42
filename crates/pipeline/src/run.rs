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
//! 3. **generate** under a concurrency permit, retrying retryable provider errors with backoff;
//! 4. **store** the output blob(s) and complete the row with its credits, or mark it failed
//!    with the error and no credits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

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
    MAX_CLOSEUPS_PER_VIEW, RetryPolicy, StepOrigin, StepReport, StoredView, TechPackOptions,
    TechPackRequest, TechPackResult, ViewInput,
};

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

    /// Makes (or finishes, or reuses) the complete tech pack of a request: the seed's
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

/// Stores a view's photo. A photo the blob store refuses (too large, not an image) is the
/// caller's mistake.
pub(crate) async fn store_photo(
    blobs: &BlobStore,
    user_id: Uuid,
    input: &ViewInput,
) -> PipelineResult<StoredBlob> {
    blobs
        .put_source(
            user_id,
            &BlobContent::Bytes(Bytes::copy_from_slice(&input.photo)),
        )
        .await
        .map_err(|error| {
            if error.is_caller_error() {
                PipelineError::InvalidRequest(format!(
                    "the photo of view `{}`: {error}",
                    input.view
                ))
            } else {
                PipelineError::Blob(error)
            }
        })
}

/// Reads stored views' photos back, each checked against its recorded hash.
pub(crate) async fn load_views(
    blobs: &BlobStore,
    owner: Uuid,
    views: &[StoredView],
) -> PipelineResult<Vec<ViewInput>> {
    let mut inputs = Vec::with_capacity(views.len());
    for view in views {
        // A request names its photos by key: only the owner's own keys are read, whatever a
        // stored request says.
        match techpack_blobs::parse_key(&view.photo_key) {
            Some(techpack_blobs::KeyKind::Content {
                owner: key_owner, ..
            }) if key_owner == owner => {}
            _ => {
                return Err(PipelineError::InvalidRequest(format!(
                    "the photo of view `{}` ({}) is not one of this user's stored photos",
                    view.view, view.photo_key
                )));
            }
        }
        let photo = blobs.get_bytes(&view.photo_key).await?;
        if sha256_of(&photo) != view.photo_sha256 {
            return Err(PipelineError::Corrupt(format!(
                "the stored photo of view `{}` ({}) does not match its hash",
                view.view, view.photo_key
            )));
        }
        inputs.push(ViewInput {
            revision_id: view.revision_id,
            view: view.view.clone(),
            photo: Arc::from(photo.as_ref()),
            reference: view.reference.clone(),
        });
    }
    Ok(inputs)
}

fn sha256_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Refuses a collection that `techpack generate` did not make.
pub(crate) fn check_tech_pack(collection: &Collection) -> PipelineResult<()> {
    if collection.collection_type != CollectionType::TechPackV2 {
        return Err(PipelineError::InvalidRequest(format!(
            "collection {} is a {}, not a tech pack made by `techpack generate`",
            collection.id, collection.collection_type
        )));
    }
    Ok(())
}

pub(crate) fn validate(request: &TechPackRequest) -> PipelineResult<()> {
    let invalid = |message: String| Err(PipelineError::InvalidRequest(message));
    if request.views.is_empty() {
        return invalid("a tech pack needs at least one view with a photo".into());
    }
    let mut seen = std::collections::HashSet::new();
    for view in &request.views {
        let name = view.view.trim();
        if name.is_empty() || name.len() > 64 || name.contains(':') {
            return invalid(format!(
                "view name `{}` must be 1 to 64 characters without `:` (front, back, side …)",
                view.view
            ));
        }
        if !seen.insert(name.to_owned()) {
            return invalid(format!("view `{name}` is given twice; give each view once"));
        }
        if view.photo.is_empty() {
            return invalid(format!("the photo of view `{name}` is empty"));
        }
    }
    if let Some(primary) = &request.primary_view
        && !seen.contains(primary.as_str())
    {
        return invalid(format!(
            "the primary view `{primary}` is not one of the views"
        ));
    }
    if request.options.closeups_per_view > MAX_CLOSEUPS_PER_VIEW {
        return invalid(format!(
            "at most {MAX_CLOSEUPS_PER_VIEW} close-ups per view (asked for {})",
            request.options.closeups_per_view
        ));
    }
    if request.options.concurrency == 0 {
        return invalid("concurrency must be at least 1".into());
    }
    if request.options.retry.attempts == 0 {
        return invalid("retry attempts must be at least 1 (the first attempt counts)".into());
    }
    Ok(())
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// What decides a view's outputs: whose, which product, revision and view, the photo's bytes,
/// category, reference size and the provider's fingerprint. The number of close-ups is not in
/// it: plans are ranked, so close-up n is the same shot whatever the count.
fn view_cache_key(
    request: &TechPackRequest,
    view: &ViewInput,
    photo_sha256: &str,
    fingerprint: &str,
) -> String {
    sha256_hex(&[
        "techpack.view/1",
        &request.user_id.to_string(),
        &request.product_idea_id.to_string(),
        &view.revision_id.to_string(),
        view.view.trim(),
        request.category.as_str(),
        view.reference.as_deref().unwrap_or(""),
        photo_sha256,
        fingerprint,
    ])
}

/// What decides a whole pack: its views' keys, their order, the close-up count and the name.
fn pack_key(request: &TechPackRequest, name: &str, views: &[Arc<ViewState>]) -> String {
    let closeups = request.options.closeups_per_view.to_string();
    let mut parts = vec!["techpack.pack/1", name, &closeups];
    parts.extend(views.iter().map(|view| view.cache_key.as_str()));
    sha256_hex(&parts)
}

fn cache_key_of(file: &TechFile) -> Option<&str> {
    file.metadata["cache_key"].as_str()
}

/// An analysis as stored in `analysis_data` (ours, or a legacy row's with our link field).
pub(crate) fn parse_analysis(value: &Value) -> Option<Analysis> {
    let mut value = value.clone();
    if let Some(object) = value.as_object_mut() {
        object.remove(LEGACY_LINK_FIELD);
    }
    serde_json::from_value(value).ok()
}

/// The slot a stored file fills, when it is one of a pack's steps.
fn slot_key_of(file: &TechFile) -> Option<SlotKey> {
    Some(SlotKey {
        revision_id: file.revision_id,
        view: file.view_type.clone(),
        slot: file.metadata["slot"].as_str()?.to_owned(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SlotKey {
    revision_id: Option<Uuid>,
    view: Option<String>,
    slot: String,
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

/// The work of one step.
enum StepWork {
    Analysis {
        /// Where the analysis goes as soon as the provider returns it.
        ready: tokio::sync::mpsc::UnboundedSender<AnalysisReady>,
    },
    Closeup {
        analysis: Arc<Analysis>,
        shot: CloseupShot,
        gate: AnalysisGate,
    },
    Sketch {
        analysis: Arc<Analysis>,
        gate: AnalysisGate,
    },
}

impl StepWork {
    fn is_analysis(&self) -> bool {
        matches!(self, StepWork::Analysis { .. })
    }
}

enum Output {
    Analysis(Generated<Analysis>),
    Closeup(Generated<Closeup>),
    Sketch(Generated<Sketch>),
}

struct StepDone {
    report: StepReport,
    /// The analysis, when this was a successful analysis step.
    analysis: Option<Arc<Analysis>>,
    view: Arc<ViewState>,
}

/// Writes the collection's completion percentage while a run goes on, off the steps' path: a
/// step never waits for it. At most one write per [`PROGRESS_WRITE_INTERVAL`], only when the
/// percentage grew; readers poll the collection, and a write per step would put a round trip
/// on every step of a single-writer database. Stops when `done` is cancelled, after the write
/// in hand, so the final status is always written after it.
async fn write_progress_in_background(
    store: Arc<dyn TechFileStore>,
    principal: Principal,
    collection_id: Uuid,
    mut percentages: tokio::sync::watch::Receiver<i32>,
    done: CancellationToken,
) {
    let mut written = -1;
    loop {
        tokio::select! {
            biased;
            _ = done.cancelled() => return,
            changed = percentages.changed() => if changed.is_err() { return },
        }
        let percentage = *percentages.borrow_and_update();
        if percentage > written {
            let progress = CollectionProgress::new(percentage, CollectionStatus::InProgress);
            match store
                .update_collection_progress(principal, collection_id, progress)
                .await
            {
                Ok(_) => written = percentage,
                // The next change tries again; the run's final status is written regardless.
                Err(error) => tracing::warn!(%error, "writing a collection's progress"),
            }
        }
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(PROGRESS_WRITE_INTERVAL) => {}
        }
    }
}

/// Whether a view's analysis row is recorded: `None` while it is being written, then the
/// outcome. Its close-ups and sketch are generated while the row is written, and wait on this
/// only to record their own rows, so a file never completes before the analysis it came from.
type AnalysisGate = tokio::sync::watch::Receiver<Option<Result<(), String>>>;

/// An analysis the provider has just returned, before its row is recorded.
struct AnalysisReady {
    view: Arc<ViewState>,
    analysis: Arc<Analysis>,
    gate: AnalysisGate,
}

/// Runs the graph: analyses first, each view's close-ups and sketch as soon as its analysis
/// is generated, all under the shared concurrency limit.
async fn run_graph(
    shared: &Arc<Shared>,
    views: &[Arc<ViewState>],
) -> PipelineResult<Vec<StepReport>> {
    let (ready_sender, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks: JoinSet<PipelineResult<StepDone>> = JoinSet::new();
    for view in views {
        let step = StepId {
            view: view.input.view.clone(),
            kind: StepKind::Analysis,
        };
        tasks.spawn(run_step(
            shared.clone(),
            view.clone(),
            step,
            StepWork::Analysis {
                ready: ready_sender.clone(),
            },
        ));
    }
    drop(ready_sender);
    let planned = shared.options.closeups_per_view;
    let mut started_dependents = std::collections::HashSet::new();
    let mut reports = Vec::new();
    loop {
        // Biased towards `ready`: an analysis task sends its analysis before it finishes, so
        // its dependents are always started before its own result is looked at.
        let done = tokio::select! {
            biased;
            Some(event) = ready.recv() => {
                started_dependents.insert(event.view.index);
                spawn_dependents(shared, &mut tasks, &event.view, &event.analysis, event.gate).await;
                continue;
            }
            joined = tasks.join_next() => match joined {
                Some(joined) => joined.map_err(|error| PipelineError::Task(error.to_string()))??,
                None => break,
            },
        };
        if matches!(done.report.step.kind, StepKind::Analysis)
            && started_dependents.insert(done.view.index)
        {
            let view = done.view.clone();
            match &done.analysis {
                // Reused from a cache: the row is already recorded.
                Some(analysis) => {
                    let (_, gate) = tokio::sync::watch::channel(Some(Ok(())));
                    spawn_dependents(shared, &mut tasks, &view, analysis, gate).await;
                }
                None => {
                    // A blocked step fails for its analysis' reason: running it again helps
                    // exactly when running the analysis again would.
                    let (origin, reason, error_kind) =
                        if done.report.origin == StepOrigin::Cancelled {
                            (
                                StepOrigin::Cancelled,
                                CANCELLED_STEP.to_owned(),
                                ErrorKind::Cancelled,
                            )
                        } else {
                            (
                                StepOrigin::Blocked,
                                format!("not attempted: the {} analysis failed", view.input.view),
                                done.report.error_kind.unwrap_or(ErrorKind::Internal),
                            )
                        };
                    let blocked = (0..planned)
                        .map(|index| StepKind::Closeup { index, shot: None })
                        .chain([StepKind::Sketch]);
                    for kind in blocked {
                        let step = StepId {
                            view: view.input.view.clone(),
                            kind,
                        };
                        shared.count_failure(|counts| ProgressEvent::StepFailed {
                            step: step.clone(),
                            error: reason.clone(),
                            counts,
                        });
                        reports.push(StepReport {
                            step,
                            origin,
                            file: None,
                            credits: 0,
                            elapsed_ms: 0,
                            attempts: 0,
                            error: Some(reason.clone()),
                            error_kind: Some(error_kind),
                        });
                    }
                }
            }
        }
        reports.push(done.report);
    }
    Ok(reports)
}

/// Starts a view's close-ups and sketch from its analysis.
async fn spawn_dependents(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<PipelineResult<StepDone>>,
    view: &Arc<ViewState>,
    analysis: &Arc<Analysis>,
    gate: AnalysisGate,
) {
    let planned = shared.options.closeups_per_view;
    let shots = shared.provider.plan_closeups(analysis, planned);
    shared.replan(planned, shots.len());
    for (index, shot) in shots.into_iter().enumerate() {
        let step = StepId {
            view: view.input.view.clone(),
            kind: StepKind::Closeup {
                index,
                shot: Some(shot.name.clone()),
            },
        };
        let work = StepWork::Closeup {
            analysis: analysis.clone(),
            shot,
            gate: gate.clone(),
        };
        tasks.spawn(run_step(shared.clone(), view.clone(), step, work));
    }
    let step = StepId {
        view: view.input.view.clone(),
        kind: StepKind::Sketch,
    };
    let work = StepWork::Sketch {
        analysis: analysis.clone(),
        gate,
    };
    tasks.spawn(run_step(shared.clone(), view.clone(), step, work));
}

async fn run_step(
    shared: Arc<Shared>,
    view: Arc<ViewState>,
    step: StepId,
    work: StepWork,
) -> PipelineResult<StepDone> {
    let step_started = Instant::now();
    let slot = step.slot();
    let key = SlotKey {
        revision_id: Some(view.input.revision_id),
        view: Some(view.input.view.clone()),
        slot,
    };
    let existing = shared.existing.get(&key);

    // 1. Cache: the file the resumed collection holds for this slot, else the slot's latest,
    // when it is completed from the same inputs and its blobs are intact. Under `force`, only
    // what this very batch made counts (an earlier attempt of its job).
    for file in [shared.own.get(&key), existing].into_iter().flatten() {
        if file.status == FileStatus::Completed
            && cache_key_of(file) == Some(view.cache_key.as_str())
            && (!shared.options.force || file.generation_batch_id == Some(shared.batch_id))
            && shared.outputs_intact(file).await?
            && let Some(done) = shared
                .reuse(
                    &view,
                    &step,
                    &work,
                    file.clone(),
                    StepOrigin::Cached,
                    step_started,
                )
                .await?
        {
            return Ok(done);
        }
    }

    // 1b. Legacy cache, for analyses only (the seed's functions kept only analyses there).
    if work.is_analysis()
        && !shared.options.force
        && let Some(legacy) = shared
            .store
            .find_legacy_analysis(
                shared.principal,
                view.input.revision_id,
                &view.input.view,
                Some(&view.photo_blob.sha256),
            )
            .await?
        && let Some(analysis) = parse_analysis(&legacy.analysis_data)
    {
        let row = shared.acquire_row(&view, &step, existing, None).await?;
        let file = if row.status == FileStatus::Completed {
            row
        } else {
            let mut metadata = shared.step_metadata(&view, &step);
            metadata["source"] = json!("legacy_revision_vision_analysis");
            metadata["legacy_id"] = json!(legacy.id);
            let changes = FileChanges {
                file_url: Some(view.photo_blob.key.clone()),
                content_sha256: Some(view.photo_blob.sha256.clone()),
                content_size: Some(view.photo_blob.size as i64),
                mime_type: Some(view.photo_blob.mime.clone()),
                analysis_data: Some(serde_json::to_value(&analysis).map_err(corrupt_json)?),
                metadata: Some(metadata),
                ai_model: legacy.model_used.clone(),
                generation_batch_id: Some(shared.batch_id),
                credits_used: Some(0),
                confidence_score: Some(analysis.confidence.score.clamp(0.0, 1.0)),
                status: Some(FileStatus::Completed),
                ..FileChanges::default()
            };
            shared.complete(row.id, changes).await?
        };
        if let Some(done) = shared
            .reuse(
                &view,
                &step,
                &work,
                file,
                StepOrigin::LegacyCache,
                step_started,
            )
            .await?
        {
            return Ok(done);
        }
    }

    // A stopped run starts no new step; a step whose inputs are cached above still counts,
    // since it costs nothing.
    if shared.stopped() {
        return shared.cancel_step(&view, step, existing).await;
    }

    // 2 and 3 at once: the row this step fills is written while the provider works, since
    // the call does not need it; on a single-writer database this keeps the row writes of a
    // whole wave of steps off the critical path.
    let shot_name = match &work {
        StepWork::Closeup { shot, .. } => Some(shot.name.clone()),
        _ => None,
    };
    let photo = ViewPhoto {
        bytes: view.input.photo.clone(),
        view: view.input.view.clone(),
        category: shared.category,
        reference: view.input.reference.clone(),
    };
    let generation_started = Instant::now();
    let generation = async {
        // Generate under a concurrency permit, with retries.
        let permit = tokio::select! {
            permit = shared.semaphore.acquire() => Some(permit.map_err(|error| PipelineError::Task(error.to_string()))?),
            _ = shared.stop_requested() => None,
        };
        let Some(_permit) = permit else {
            return Ok::<_, PipelineError>(None);
        };
        shared.emit_now(|counts| ProgressEvent::StepStarted {
            step: step.clone(),
            counts,
        });
        Ok(Some(
            generate_with_retries(
                shared.provider.as_ref(),
                &photo,
                &work,
                shared.options.retry,
            )
            .await,
        ))
    };
    let (row, generated) = tokio::join!(
        shared.acquire_row(&view, &step, existing, shot_name),
        generation
    );
    let row = row?;
    let Some((result, attempts)) = generated? else {
        // Stopped while waiting for a provider slot: the call was never made.
        return shared.cancel_step(&view, step, Some(&row)).await;
    };
    if row.status == FileStatus::Completed
        && let Some(done) = shared
            .reuse(
                &view,
                &step,
                &work,
                row.clone(),
                StepOrigin::Cached,
                step_started,
            )
            .await?
    {
        // A previous attempt of this very batch finished it (its key returned the row): keep
        // that output and charge nothing for the call just made.
        return Ok(done);
    }

    // An analysis goes to its dependents at once: they are generated while its row is
    // recorded, which keeps that write off the pack's critical path.
    let mut gate_sender = None;
    if let (Ok(Output::Analysis(generated)), StepWork::Analysis { ready }) = (&result, &work) {
        let (sender, gate) = tokio::sync::watch::channel(None);
        let _ = ready.send(AnalysisReady {
            view: view.clone(),
            analysis: Arc::new(generated.output.clone()),
            gate,
        });
        gate_sender = Some(sender);
    }

    // 4. Store the outputs and complete the row, or record the failure.
    let stored = match result {
        Ok(output) => match analysis_recorded(&work).await {
            Ok(()) => shared.store_output(&view, &step, &row, output).await,
            // The analysis row could not be written (the store failed): not the step's fault.
            Err(message) => Err(StepError {
                message,
                kind: ErrorKind::Unavailable,
            }),
        },
        Err(error) => Err(StepError::of(&error, error.to_string())),
    };
    if let Some(sender) = gate_sender {
        let outcome = stored
            .as_ref()
            .map(|_| ())
            .map_err(|error| error.message.clone());
        let _ = sender.send(Some(outcome));
    }
    let elapsed_ms = generation_started.elapsed().as_millis() as u64;
    match stored {
        Ok((file, analysis)) => {
            let credits = file.credits_used;
            if let Some(analysis) = &analysis
                && shared.options.legacy_dual_write
            {
                shared.dual_write(&view, &file, analysis).await?;
            }
            shared.count_success(credits, |counts| ProgressEvent::StepFinished {
                step: step.clone(),
                origin: StepOrigin::Generated,
                credits,
                elapsed_ms,
                counts,
            });
            Ok(StepDone {
                report: StepReport {
                    step,
                    origin: StepOrigin::Generated,
                    file: Some(file),
                    credits,
                    elapsed_ms,
                    attempts,
                    error: None,
                    error_kind: None,
                },
                analysis,
                view,
            })
        }
        Err(StepError { message, kind }) => {
            let changes = FileChanges {
                status: Some(FileStatus::Failed),
                error_message: Some(message.clone()),
                credits_used: Some(0),
                generation_batch_id: Some(shared.batch_id),
                ..FileChanges::default()
            };
            let file = shared.complete(row.id, changes).await?;
            shared.count_failure(|counts| ProgressEvent::StepFailed {
                step: step.clone(),
                error: message.clone(),
                counts,
            });
            Ok(StepDone {
                report: StepReport {
                    step,
                    origin: StepOrigin::Failed,
                    file: Some(file),
                    credits: 0,
                    elapsed_ms,
                    attempts,
                    error: Some(message),
                    error_kind: Some(kind),
                },
                analysis: None,
                view,
            })
        }
    }
}

/// Why a step failed: the message recorded on its file, and the kind of failure, which tells
/// whether running the job again can help (a provider outage) or not (a photo that is not an
/// image).
#[derive(Debug, Clone)]
struct StepError {
    message: String,
    kind: ErrorKind,
}

impl StepError {
    fn of(error: &impl ClassifiedError, message: String) -> Self {
        Self {
            message,
            kind: error.kind(),
        }
    }
}

/// Waits until the analysis a close-up or sketch was made from is recorded; an `Err` is the
/// step's failure message when it could not be.
async fn analysis_recorded(work: &StepWork) -> Result<(), String> {
    let (StepWork::Closeup { gate, .. } | StepWork::Sketch { gate, .. }) = work else {
        return Ok(());
    };
    let mut gate = gate.clone();
    match gate.wait_for(Option::is_some).await {
        Ok(outcome) => match outcome.as_ref() {
            Some(Err(error)) => Err(format!(
                "not recorded: the analysis it was made from could not be recorded ({error})"
            )),
            _ => Ok(()),
        },
        Err(_) => Err(
            "not recorded: the run stopped before the analysis it was made from was recorded"
                .into(),
        ),
    }
}

fn corrupt_json(error: serde_json::Error) -> PipelineError {
    PipelineError::Corrupt(format!("serialising an output to JSON: {error}"))
}

/// Calls the provider, retrying retryable errors with exponential backoff (or the provider's
/// own `retry after`, capped). Returns the result and the number of calls made.
async fn generate_with_retries(
    provider: &dyn Provider,
    photo: &ViewPhoto,
    work: &StepWork,
    policy: RetryPolicy,
) -> (Result<Output, GenerateError>, u32) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match work {
            StepWork::Analysis { .. } => provider.analyze(photo).await.map(Output::Analysis),
            StepWork::Closeup { analysis, shot, .. } => provider
                .closeup(photo, analysis, shot)
                .await
                .map(Output::Closeup),
            StepWork::Sketch { analysis, .. } => {
                provider.sketch(photo, analysis).await.map(Output::Sketch)
            }
        };
        match result {
            Err(error) if error.is_retryable() && attempt < policy.attempts => {
                let backoff = policy.base_delay.saturating_mul(1 << (attempt - 1).min(16));
                let wait = match &error {
                    GenerateError::RateLimited {
                        retry_after: Some(after),
                    } => (*after).max(backoff),
                    _ => backoff,
                };
                tracing::debug!(%error, attempt, wait_ms = wait.as_millis() as u64, "retrying a generation step");
                tokio::time::sleep(wait.min(policy.max_delay)).await;
            }
            other => return (other, attempt),
        }
    }
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

    /// Records a step the run stopped before it ran: its unfinished row (when it has one)
    /// becomes failed with the reason, not charged, so `--retry-failed` or a resumed job
    /// redoes it and nothing stays `processing`.
    async fn cancel_step(
        &self,
        view: &Arc<ViewState>,
        step: StepId,
        row: Option<&TechFile>,
    ) -> PipelineResult<StepDone> {
        let reason = CANCELLED_STEP.to_owned();
        let file = match row {
            Some(row)
                if row.status == FileStatus::Processing
                    && row.generation_batch_id == Some(self.batch_id) =>
            {
                let changes = FileChanges {
                    status: Some(FileStatus::Failed),
                    error_message: Some(reason.clone()),
                    credits_used: Some(0),
                    ..FileChanges::default()
                };
                Some(self.complete(row.id, changes).await?)
            }
            _ => None,
        };
        self.count_failure(|counts| ProgressEvent::StepFailed {
            step: step.clone(),
            error: reason.clone(),
            counts,
        });
        Ok(StepDone {
            report: StepReport {
                step,
                origin: StepOrigin::Cancelled,
                file,
                credits: 0,
                elapsed_ms: 0,
                attempts: 0,
                error: Some(reason),
                error_kind: Some(ErrorKind::Cancelled),
            },
            analysis: None,
            view: view.clone(),
        })
    }

    /// Completes a step's row, in a batch with the other steps finishing now.
    async fn complete(&self, id: Uuid, changes: FileChanges) -> PipelineResult<TechFile> {
        self.completions.submit((id, changes)).await
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

    fn counts_now(&self) -> ProgressCounts {
        self.tally.lock().expect("tally lock").counts(self.started)
    }

    /// Changes the tally, emits the event made from the new counts and hands the new
    /// percentage to the background writer. The event is sent under the tally's lock, so
    /// readers get events in the order of their counts.
    fn count(
        &self,
        change: impl FnOnce(&mut Tally),
        event: impl FnOnce(ProgressCounts) -> Option<ProgressEvent>,
    ) -> ProgressCounts {
        let counts = {
            let mut tally = self.tally.lock().expect("tally lock");
            change(&mut tally);
            let counts = tally.counts(self.started);
            if let Some(event) = event(counts) {
                self.emit(event);
            }
            counts
        };
        self.percentages.send_replace(counts.percentage());
        counts
    }

    /// Emits an event with the current counts, under the tally's lock (see [`Self::count`]).
    fn emit_now(&self, event: impl FnOnce(ProgressCounts) -> ProgressEvent) -> ProgressCounts {
        let tally = self.tally.lock().expect("tally lock");
        let counts = tally.counts(self.started);
        self.emit(event(counts));
        counts
    }

    fn count_success(
        &self,
        credits: i64,
        event: impl FnOnce(ProgressCounts) -> ProgressEvent,
    ) -> ProgressCounts {
        self.count(
            |tally| {
                tally.done += 1;
                tally.credits_used += credits;
            },
            |counts| Some(event(counts)),
        )
    }

    fn count_failure(&self, event: impl FnOnce(ProgressCounts) -> ProgressEvent) -> ProgressCounts {
        self.count(|tally| tally.failed += 1, |counts| Some(event(counts)))
    }

    /// An analysis planned `actual` close-ups where `planned` were assumed.
    fn replan(&self, planned: usize, actual: usize) {
        self.count(
            |tally| tally.total = tally.total + actual - planned,
            |_| None,
        );
    }

    fn section(&self, view: &ViewState, step: &StepId) -> CollectionItemInput {
        // Orders leave room for 100 views of 100 close-ups, and keep sections apart even when
        // a collection is listed by order alone.
        let (section, order) = match step.kind {
            StepKind::Analysis => (SECTION_BASE_VIEWS, view.index),
            StepKind::Closeup { index, .. } => (SECTION_CLOSEUPS, 100 + view.index * 100 + index),
            StepKind::Sketch => (SECTION_SKETCHES, 20_000 + view.index),
        };
        CollectionItemInput {
            tech_file_id: Uuid::nil(),
            display_order: Some(order as i32),
            section: Some(section.into()),
        }
    }

    async fn add_to_collection(
        &self,
        view: &ViewState,
        step: &StepId,
        file: &TechFile,
    ) -> PipelineResult<()> {
        let mut item = self.section(view, step);
        item.tech_file_id = file.id;
        self.collection_adds.submit(item).await
    }

    fn step_metadata(&self, view: &ViewState, step: &StepId) -> Value {
        json!({
            "slot": step.slot(),
            "cache_key": view.cache_key,
            "photo_sha256": view.photo_blob.sha256,
            "photo_key": view.photo_blob.key,
            "provider": self.provider.name(),
            "fingerprint": self.provider.fingerprint(),
            "collection_id": self.collection_id,
        })
    }

    /// Whether every blob a cached file needs is stored with the size it recorded: a file
    /// whose output was lost (a bucket emptied, a folder restored from an old backup) is made
    /// again rather than reused, so a "completed" pack never points at nothing.
    async fn outputs_intact(&self, file: &TechFile) -> PipelineResult<bool> {
        let mut wanted: Vec<(&str, Option<i64>)> = Vec::new();
        if let Some(key) = file.file_url.as_deref() {
            wanted.push((key, file.content_size));
        }
        if let Some(key) = file.metadata["png_key"].as_str() {
            wanted.push((key, file.metadata["png_size"].as_i64()));
        }
        for (key, size) in wanted {
            match self.blobs.head(key).await {
                Ok(meta) if size.is_none_or(|size| u64::try_from(size).ok() == Some(meta.size)) => {
                }
                Ok(_) | Err(techpack_blobs::BlobError::NotFound { .. }) => {
                    tracing::warn!(file = %file.id, key, "a cached output's blob is missing or has the wrong size; regenerating it");
                    return Ok(false);
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(true)
    }

    /// Uses a completed file as the step's output at no charge. `None` when the file cannot
    /// serve (an analysis that no longer parses): the step is then generated.
    async fn reuse(
        &self,
        view: &Arc<ViewState>,
        step: &StepId,
        work: &StepWork,
        file: TechFile,
        origin: StepOrigin,
        step_started: Instant,
    ) -> PipelineResult<Option<StepDone>> {
        let analysis = match work {
            StepWork::Analysis { .. } => match parse_analysis(&file.analysis_data) {
                Some(analysis) => Some(Arc::new(analysis)),
                None => return Ok(None),
            },
            _ => None,
        };
        self.add_to_collection(view, step, &file).await?;
        let elapsed_ms = step_started.elapsed().as_millis() as u64;
        self.count_success(0, |counts| ProgressEvent::StepFinished {
            step: step.clone(),
            origin,
            credits: 0,
            elapsed_ms,
            counts,
        });
        Ok(Some(StepDone {
            report: StepReport {
                step: step.clone(),
                origin,
                file: Some(file),
                credits: 0,
                elapsed_ms,
                attempts: 0,
                error: None,
                error_kind: None,
            },
            analysis,
            view: view.clone(),
        }))
    }

    /// The processing row a step fills: the slot's unfinished row from the same inputs, else a
    /// new version of the slot's file, else a new file; keyed per (batch, view, slot) so a
    /// retried call returns the same row. The row is put in the collection at once, so a
    /// reader sees what is in progress.
    async fn acquire_row(
        &self,
        view: &ViewState,
        step: &StepId,
        existing: Option<&TechFile>,
        shot_name: Option<String>,
    ) -> PipelineResult<TechFile> {
        let idempotency_key = format!("{}:{}:{}", self.batch_id, view.input.view, step.slot());
        let row = match existing {
            Some(file)
                if matches!(file.status, FileStatus::Processing | FileStatus::Failed)
                    && cache_key_of(file) == Some(view.cache_key.as_str()) =>
            {
                file.clone()
            }
            Some(file) => {
                let reason = if self.options.force {
                    "regenerated on request (--force)"
                } else if file.status != FileStatus::Completed {
                    "regenerated: the previous attempt did not finish"
                } else if cache_key_of(file) == Some(view.cache_key.as_str()) {
                    "regenerated: its stored output was missing or damaged"
                } else {
                    "regenerated: the photo, provider or options changed"
                };
                let changes = FileChanges {
                    file_category: shot_name,
                    metadata: Some(self.step_metadata(view, step)),
                    generation_batch_id: Some(self.batch_id),
                    // Keyed by the version it supersedes too: a run of the same batch that
                    // makes this slot again (its output was lost) gets a new version, while a
                    // retried call of this very step returns the row it made.
                    idempotency_key: Some(format!("{idempotency_key}:after:{}", file.id)),
                    credits_used: Some(0),
                    status: Some(FileStatus::Processing),
                    change_description: Some(reason.into()),
                    ..FileChanges::default()
                };
                self.store
                    .create_tech_file_version(self.principal, file.id, changes)
                    .await?
            }
            None => {
                let file_type = match step.kind {
                    StepKind::Analysis => FileType::BaseView,
                    StepKind::Closeup { .. } => FileType::Closeup,
                    StepKind::Sketch => FileType::Sketch,
                };
                let mut new = NewTechFile::new(self.user_id, self.product_idea_id, file_type);
                new.revision_id = Some(view.input.revision_id);
                new.view_type = Some(view.input.view.clone());
                new.file_category = shot_name;
                new.metadata = self.step_metadata(view, step);
                new.generation_batch_id = Some(self.batch_id);
                new.idempotency_key = Some(idempotency_key);
                self.store.create_tech_file(self.principal, new).await?
            }
        };
        if row.status != FileStatus::Completed {
            self.add_to_collection(view, step, &row).await?;
        }
        Ok(row)
    }

    /// Stores a step's output blob(s) and completes its row. An `Err` is the step's failure
    /// message (the blob store refused the output), recorded on the row by the caller.
    async fn store_output(
        &self,
        view: &ViewState,
        step: &StepId,
        row: &TechFile,
        output: Output,
    ) -> Result<(TechFile, Option<Arc<Analysis>>), StepError> {
        let stored_blobs = std::sync::Mutex::new(Vec::new());
        let put = |bytes: Vec<u8>| {
            let stored_blobs = &stored_blobs;
            async move {
                let content = BlobContent::from(bytes);
                let blob = self
                    .blobs
                    .put_source(self.user_id, &content)
                    .await
                    .map_err(|error| {
                        StepError::of(&error, format!("storing the output: {error}"))
                    })?;
                stored_blobs
                    .lock()
                    .expect("stored blobs lock")
                    .push((blob.clone(), content));
                Ok::<_, StepError>(blob)
            }
        };
        let mut metadata = self.step_metadata(view, step);
        let (blob, analysis_data, model, prompt, confidence, credits, category, analysis) =
            match output {
                Output::Analysis(generated) => {
                    let data = serde_json::to_value(&generated.output).map_err(|error| {
                        StepError::of(&corrupt_json(error), "serialising the analysis".into())
                    })?;
                    let analysis = Arc::new(generated.output);
                    (
                        view.photo_blob.clone(),
                        data,
                        generated.model,
                        generated.prompt,
                        generated.confidence,
                        generated.credits,
                        None,
                        Some(analysis),
                    )
                }
                Output::Closeup(generated) => {
                    let closeup = generated.output;
                    let data = json!({ "shot": closeup.shot, "size": closeup.size });
                    let blob = put(closeup.png).await?;
                    (
                        blob,
                        data,
                        generated.model,
                        generated.prompt,
                        generated.confidence,
                        generated.credits,
                        Some(closeup.shot.name),
                        None,
                    )
                }
                Output::Sketch(generated) => {
                    let sketch = generated.output;
                    let (svg, png) =
                        tokio::try_join!(put(sketch.svg.into_bytes()), put(sketch.png))?;
                    metadata["png_key"] = json!(png.key);
                    metadata["png_sha256"] = json!(png.sha256);
                    metadata["png_size"] = json!(png.size);
                    let data = match sketch.data {
                        Value::Object(_) => sketch.data,
                        other => json!({ "data": other }),
                    };
                    (
                        svg,
                        data,
                        generated.model,
                        generated.prompt,
                        generated.confidence,
                        generated.credits,
                        None,
                        None,
                    )
                }
            };
        let changes = FileChanges {
            file_category: category,
            file_url: Some(blob.key),
            content_sha256: Some(blob.sha256),
            content_size: Some(blob.size as i64),
            mime_type: Some(blob.mime),
            analysis_data: Some(analysis_data),
            metadata: Some(metadata),
            ai_model: Some(model),
            generation_prompt: Some(prompt),
            generation_batch_id: Some(self.batch_id),
            credits_used: Some(credits.max(0)),
            confidence_score: Some(if confidence.is_finite() {
                confidence.clamp(0.0, 1.0)
            } else {
                0.0
            }),
            status: Some(FileStatus::Completed),
            ..FileChanges::default()
        };
        let file = self
            .complete(row.id, changes)
            .await
            .map_err(|error| StepError::of(&error, format!("recording the output: {error}")))?;
        // The row is committed: cleanup keeps its blobs from now on; put back any it removed
        // before.
        let stored_blobs = stored_blobs.into_inner().expect("stored blobs lock");
        for (blob, content) in &stored_blobs {
            self.blobs
                .ensure_stored(self.user_id, blob, content)
                .await
                .map_err(|error| StepError::of(&error, format!("storing the output: {error}")))?;
        }
        Ok((file, analysis))
    }

    /// Mirrors a generated analysis into the legacy table, linked to its tech file.
    async fn dual_write(
        &self,
        view: &ViewState,
        file: &TechFile,
        analysis: &Analysis,
    ) -> PipelineResult<()> {
        let mut data = serde_json::to_value(analysis).map_err(corrupt_json)?;
        data[LEGACY_LINK_FIELD] = json!(file.id);
        self.store
            .write_legacy_analysis(
                self.principal,
                NewLegacyAnalysis {
                    user_id: self.user_id,
                    product_idea_id: self.product_idea_id,
                    revision_id: view.input.revision_id,
                    view_type: view.input.view.clone(),
                    image_url: Some(view.photo_blob.key.clone()),
                    image_sha256: Some(view.photo_blob.sha256.clone()),
                    analysis_data: data,
                    model_used: file.ai_model.clone(),
                    credits_used: file.credits_used,
                },
            )
            .await?;
        Ok(())
    }

    /// Writes the `complete_pack` manifest that closes the run: a JSON blob listing every file
    /// of the pack. The manifest is one file per product and collection name, versioned; an
    /// unchanged manifest is not written again. The collection lists only this run's
    /// manifest: the versions earlier runs of it added (before a `--retry-failed` or a
    /// resumed job) are taken out.
    async fn write_manifest(
        &self,
        collection_name: &str,
        primary_view: &str,
        status: CollectionStatus,
        views: &[Arc<ViewState>],
        reports: &[StepReport],
    ) -> PipelineResult<TechFile> {
        let mut files: Vec<(&StepReport, usize)> = reports
            .iter()
            .map(|report| {
                let view = views
                    .iter()
                    .find(|v| v.input.view == report.step.view)
                    .map(|v| v.index)
                    .unwrap_or(0);
                let item = self.section(&views[view], &report.step);
                (report, item.display_order.unwrap_or(0) as usize)
            })
            .collect();
        files.sort_by_key(|(_, order)| *order);
        let listed: Vec<Value> = files
            .iter()
            .map(|(report, order)| {
                let section = self
                    .section(
                        views
                            .iter()
                            .find(|v| v.input.view == report.step.view)
                            .unwrap_or(&views[0]),
                        &report.step,
                    )
                    .section;
                let file = report.file.as_ref();
                json!({
                    "section": section,
                    "display_order": order,
                    "view": report.step.view,
                    "slot": report.step.slot(),
                    "tech_file_id": file.map(|f| f.id),
                    "version": file.map(|f| f.version),
                    "file_type": file.map(|f| f.file_type.as_str()),
                    "file_category": file.and_then(|f| f.file_category.clone()),
                    "status": file.map(|f| f.status.as_str()).unwrap_or("blocked"),
                    "file_url": file.and_then(|f| f.file_url.clone()),
                    "content_sha256": file.and_then(|f| f.content_sha256.clone()),
                    "mime_type": file.and_then(|f| f.mime_type.clone()),
                    "png_key": file.and_then(|f| f.metadata["png_key"].as_str().map(str::to_owned)),
                    "credits_used": file.map(|f| f.credits_used).unwrap_or(0),
                    "error": report.error,
                })
            })
            .collect();
        let total_credits: i64 = reports
            .iter()
            .filter_map(|r| r.file.as_ref())
            .map(|f| f.credits_used)
            .sum();
        // No timestamps: an unchanged pack gives byte-identical manifests, hence no new version.
        let manifest = json!({
            "schema": "techpack.complete_pack/1",
            "product_idea_id": self.product_idea_id,
            "collection_id": self.collection_id,
            "collection_name": collection_name,
            "category": self.category.as_str(),
            "status": status.as_str(),
            "primary_view": primary_view,
            "views": views.iter().map(|v| json!({
                "view": v.input.view,
                "revision_id": v.input.revision_id,
                "photo_key": v.photo_blob.key,
                "photo_sha256": v.photo_blob.sha256,
            })).collect::<Vec<_>>(),
            "files": listed,
            "total_credits": total_credits,
        });
        let content =
            BlobContent::from(serde_json::to_vec_pretty(&manifest).map_err(corrupt_json)?);
        let blob = self.blobs.put_source(self.user_id, &content).await?;
        let slot = format!("complete_pack:{collection_name}");
        let key = SlotKey {
            revision_id: None,
            view: None,
            slot: slot.clone(),
        };
        let summary = json!({
            "status": status.as_str(),
            "files": reports.iter().filter(|r| r.file.is_some()).count(),
            "failed": reports.iter().filter(|r| matches!(r.origin, StepOrigin::Failed | StepOrigin::Blocked | StepOrigin::Cancelled)).count(),
            "total_credits": total_credits,
        });
        let metadata = json!({ "slot": slot, "collection_id": self.collection_id });
        let idempotency_key = format!("{}:complete_pack:{}", self.batch_id, &blob.sha256[..16]);
        let file = match self.existing.get(&key) {
            Some(file)
                if file.content_sha256.as_deref() == Some(blob.sha256.as_str())
                    && file.status == FileStatus::Completed =>
            {
                file.clone()
            }
            Some(file) => {
                let changes = FileChanges {
                    file_url: Some(blob.key.clone()),
                    content_sha256: Some(blob.sha256.clone()),
                    content_size: Some(blob.size as i64),
                    mime_type: Some(blob.mime.clone()),
                    analysis_data: Some(summary),
                    metadata: Some(metadata),
                    generation_batch_id: Some(self.batch_id),
                    idempotency_key: Some(idempotency_key),
                    credits_used: Some(0),
                    status: Some(FileStatus::Completed),
                    change_description: Some(format!(
                        "tech pack {} ({})",
                        self.collection_id, status
                    )),
                    ..FileChanges::default()
                };
                self.store
                    .create_tech_file_version(self.principal, file.id, changes)
                    .await?
            }
            None => {
                let mut new =
                    NewTechFile::new(self.user_id, self.product_idea_id, FileType::CompletePack);
                new.file_category = Some(collection_name.chars().take(200).collect());
                new.file_url = Some(blob.key.clone());
                new.content_sha256 = Some(blob.sha256.clone());
                new.content_size = Some(blob.size as i64);
                new.mime_type = Some(blob.mime.clone());
                new.analysis_data = summary;
                new.metadata = metadata;
                new.generation_batch_id = Some(self.batch_id);
                new.idempotency_key = Some(idempotency_key);
                new.status = FileStatus::Completed;
                self.store.create_tech_file(self.principal, new).await?
            }
        };
        self.store
            .add_files_to_collection(
                self.principal,
                self.collection_id,
                vec![CollectionItemInput {
                    tech_file_id: file.id,
                    display_order: Some(30_000),
                    section: Some(SECTION_MANIFEST.into()),
                }],
            )
            .await?;
        self.blobs
            .ensure_stored(self.user_id, &blob, &content)
            .await?;
        // Added before the old ones are taken out: a crash in between leaves two manifests,
        // which the collection's next run tidies, never none. A collection this run made has
        // no older ones.
        if self.resumed_collection {
            self.remove_older_manifests(&file).await?;
        }
        Ok(file)
    }

    /// Takes the collection's other manifests out of it. One newer than `current` stays: it
    /// was written by a concurrent run of the same collection, which takes `current` out in
    /// turn; if each run removed the other's, the collection could be left with none.
    async fn remove_older_manifests(&self, current: &TechFile) -> PipelineResult<()> {
        let pack = self
            .store
            .get_collection_with_files(self.principal, self.collection_id)
            .await?;
        let older: Vec<Uuid> = pack
            .items
            .iter()
            .filter(|(item, file)| {
                item.section.as_deref() == Some(SECTION_MANIFEST)
                    && file.id != current.id
                    && !is_newer(file, current)
            })
            .map(|(_, file)| file.id)
            .collect();
        if !older.is_empty() {
            self.store
                .remove_files_from_collection(self.principal, self.collection_id, older)
                .await?;
        }
        Ok(())
    }
}

/// Whether `file` was made after `than`: a later version of the same file, else (another
/// lineage, e.g. after the manifest was archived) created later.
fn is_newer(file: &TechFile, than: &TechFile) -> bool {
    if file.lineage_id == than.lineage_id {
        file.version > than.version
    } else {
        (file.created_at, file.id) > (than.created_at, than.id)
    }
}
