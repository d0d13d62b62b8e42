//! The tech-pack orchestrator: the specification's `generateCompleteTechPack` and `getExistingTechPack`.
//!
//! [`Pipeline::generate`] plans a pack as a graph — each view's analysis, then that view's
//! close-ups and sketch as soon as its analysis is done — and runs it with bounded
//! concurrency. Each step is recorded as a versioned `tech_files` row (processing → completed
//! or failed), its output stored as a content-addressed blob, its credit charged once (an
//! idempotency key per batch and step); a `tech_pack_v2` collection holds the pack in sections
//! with its progress and status kept current, and a `complete_pack` manifest closes the run.
//! Unchanged views are reused at no charge (from `tech_files`, then the legacy
//! `revision_vision_analysis` table); changed ones get new versions of their files.
//! [`ProgressEvent`]s report every step as it starts and ends.

mod batch;
mod error;
pub mod jobs;
mod legacy;
mod pack;
mod progress;
mod request;
mod run;

pub use error::{PipelineError, PipelineResult};
pub use legacy::{LegacyImportReport, import_legacy_analyses};
pub use pack::{ExportReport, ExportedFile, export_tech_pack, files_in_section, find_tech_pack};
pub use progress::{ProgressCounts, ProgressEvent, ProgressSender, StepId, StepKind};
pub use request::{
    MAX_CLOSEUPS_PER_VIEW, StepOrigin, StepReport, StoredView, TechPackOptions, TechPackRequest,
    TechPackResult, ViewInput,
};
pub use tokio_util::sync::CancellationToken;

pub use run::{
    DEFAULT_COLLECTION_NAME, LEGACY_LINK_FIELD, Pipeline, SECTION_BASE_VIEWS, SECTION_CLOSEUPS,
    SECTION_MANIFEST, SECTION_SKETCHES,
};
