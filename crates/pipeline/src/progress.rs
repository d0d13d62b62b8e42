//! Progress of a run as events, for a progress bar and the job's event stream. The event types
//! live in the model (the store records them, the HTTP service streams them).

pub use techpack_model::{ProgressCounts, ProgressEvent, StepId, StepKind};

/// Where a run sends its events. Unbounded so a slow reader never slows generation down; a
/// closed receiver is ignored.
pub type ProgressSender = tokio::sync::mpsc::UnboundedSender<ProgressEvent>;
