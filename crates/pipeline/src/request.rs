//! The request and the result of a tech-pack run, after the specification's `generateCompleteTechPack`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use techpack_model::{Collection, CollectionStatus, CollectionType, ProductCategory, TechFile};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{PipelineError, PipelineResult};
use crate::progress::StepId;

/// One base view of the product: a revision's photo and the view it shows.
#[derive(Debug, Clone)]
pub struct ViewInput {
    /// The revision the photo belongs to.
    pub revision_id: Uuid,
    /// The view (front, back, side …); unique within a request.
    pub view: String,
    /// The encoded photo (JPEG, PNG or WebP).
    pub photo: Arc<[u8]>,
    /// A known real size for measurements, e.g. `height=70cm`.
    pub reference: Option<String>,
}

/// The options of a run.
#[derive(Debug, Clone)]
pub struct TechPackOptions {
    /// The collection's name (default: "Tech pack").
    pub collection_name: Option<String>,
    /// Close-ups per view (default 4); fewer when the analysis finds fewer details.
    pub closeups_per_view: usize,
    /// Provider calls in flight at once (default 4).
    pub concurrency: usize,
    /// Regenerate everything even when cached outputs match: new versions of every file.
    pub force: bool,
    /// Also write each analysis to the legacy `revision_vision_analysis` table (default on,
    /// as in the seed, so older readers keep working).
    pub legacy_dual_write: bool,
    /// The generation batch of the run. A durable job gives its own, so that an attempt that
    /// resumes after a crash continues the same collection even under `force`; when no
    /// collection has it yet, the run's new collection gets it. `None`: a fresh batch.
    pub batch_id: Option<Uuid>,
    /// Stops the run at the next step boundary when cancelled: steps in flight finish and are
    /// recorded, steps not yet started are recorded as cancelled (failed, not charged).
    pub stop: Option<CancellationToken>,
}

impl Default for TechPackOptions {
    fn default() -> Self {
        Self {
            collection_name: None,
            closeups_per_view: 4,
            concurrency: 4,
            force: false,
            legacy_dual_write: true,
            batch_id: None,
            stop: None,
        }
    }
}

/// A view whose photo is already in the blob store: what a pack's collection records and what
/// a queued job carries, so a later run reads the photo back instead of being sent it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredView {
    /// The view name.
    pub view: String,
    /// The revision the view's files belong to.
    pub revision_id: Uuid,
    /// The photo's blob key.
    pub photo_key: String,
    /// The photo's SHA-256, checked when the photo is read back.
    pub photo_sha256: String,
    /// The reference size, e.g. `height=70cm`.
    pub reference: Option<String>,
}

/// Close-ups per view are capped: each is a provider call and a credit.
pub const MAX_CLOSEUPS_PER_VIEW: usize = 16;

/// What to make: the specification's `generateCompleteTechPack` input.
#[derive(Debug, Clone)]
pub struct TechPackRequest {
    /// The product idea.
    pub product_idea_id: Uuid,
    /// The acting user, who owns every file made.
    pub user_id: Uuid,
    /// The base views, in display order.
    pub views: Vec<ViewInput>,
    /// The product category.
    pub category: ProductCategory,
    /// The view whose photo is the pack's primary image (default: the first).
    pub primary_view: Option<String>,
    /// Options.
    pub options: TechPackOptions,
}

pub use techpack_model::StepOrigin;

/// One step of a run and what came of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    /// The step.
    pub step: StepId,
    /// How its output came to be.
    pub origin: StepOrigin,
    /// The step's file (version) as stored, when there is one.
    pub file: Option<TechFile>,
    /// Credits charged for it in this run.
    pub credits: i64,
    /// Wall time of the step, waiting for a concurrency slot excluded.
    pub elapsed_ms: u64,
    /// Provider operations called (0 for a reused output, else 1: the provider retries
    /// transient failures inside that one call, under its own policy).
    pub attempts: u32,
    /// The error of a failed or blocked step.
    pub error: Option<String>,
    /// The kind of that error: whether making the step again can succeed.
    #[serde(default)]
    pub error_kind: Option<techpack_model::ErrorKind>,
    /// Whether making the step again later may succeed (a provider outage, a rate limit), as
    /// opposed to a failure no retry changes (a refused key, a photo that is not an image, an
    /// answer that breaks the schema). False for a step that did not fail.
    #[serde(default)]
    pub retryable: bool,
    /// How long the provider asked to wait before the step is tried again, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The result of a run: the specification's `generateCompleteTechPack` output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TechPackResult {
    /// The `tech_pack_v2` collection holding the pack.
    pub collection_id: Uuid,
    /// The generation run (`generation_batch_id` of the files it made).
    pub batch_id: Uuid,
    /// The product idea.
    pub product_idea_id: Uuid,
    /// Whether an existing collection for the same inputs was continued rather than a new one made.
    pub resumed_collection: bool,
    /// Final status: completed, partial or failed.
    pub status: CollectionStatus,
    /// Share of the pack's steps that have an output, 0..=100.
    pub completion_percentage: i32,
    /// Credits charged by this run.
    pub credits_used: i64,
    /// The collection's total credits (its files', including reused ones) as the database keeps it.
    pub collection_credits: i64,
    /// The base-view analyses, in view order.
    pub base_views: Vec<StepReport>,
    /// The close-ups, by view then shot.
    pub closeups: Vec<StepReport>,
    /// The sketches, in view order.
    pub sketches: Vec<StepReport>,
    /// The `complete_pack` manifest that closed the run.
    pub manifest: Option<TechFile>,
    /// Steps not attempted because their view's analysis failed.
    pub blocked: Vec<StepReport>,
    /// Wall time of the run.
    pub elapsed_ms: u64,
}

impl TechPackResult {
    /// Every step report, in section order.
    pub fn steps(&self) -> impl Iterator<Item = &StepReport> {
        self.base_views
            .iter()
            .chain(&self.closeups)
            .chain(&self.sketches)
            .chain(&self.blocked)
    }

    /// The steps that failed (blocked ones included).
    pub fn failed_steps(&self) -> impl Iterator<Item = &StepReport> {
        self.steps().filter(|step| {
            matches!(
                step.origin,
                StepOrigin::Failed | StepOrigin::Blocked | StepOrigin::Cancelled
            )
        })
    }
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

/// Refuses a request that cannot make a pack, saying what to change.
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
    Ok(())
}
