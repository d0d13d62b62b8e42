//! Progress of a run as events: what the orchestrator reports, a job records and the HTTP
//! service streams. Here, not in the pipeline, so that the store keeps them and every front end
//! reads the same types.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::CollectionStatus;

/// What a step makes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StepKind {
    /// The base-view analysis.
    Analysis,
    /// Close-up number `index` (from 0) of the view's plan, showing `shot`.
    Closeup {
        /// Position in the view's plan.
        index: usize,
        /// The shot's name (collar, cuff …), once planned.
        shot: Option<String>,
    },
    /// The technical sketch.
    Sketch,
}

/// One step of a run: a kind of output of one view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepId {
    /// The view (front, back …).
    pub view: String,
    /// What the step makes.
    #[serde(flatten)]
    pub kind: StepKind,
}

impl StepId {
    /// The slot name of the step within its view, stored as `metadata.slot`: every version of
    /// one slot is one lineage (`analysis`, `closeup:0`, `sketch`).
    pub fn slot(&self) -> String {
        match &self.kind {
            StepKind::Analysis => "analysis".into(),
            StepKind::Closeup { index, .. } => format!("closeup:{index}"),
            StepKind::Sketch => "sketch".into(),
        }
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            StepKind::Analysis => write!(f, "{} analysis", self.view),
            StepKind::Closeup {
                index,
                shot: Some(shot),
            } => {
                write!(f, "{} close-up {} ({shot})", self.view, index + 1)
            }
            StepKind::Closeup { index, shot: None } => {
                write!(f, "{} close-up {}", self.view, index + 1)
            }
            StepKind::Sketch => write!(f, "{} sketch", self.view),
        }
    }
}

/// Where a run stands, sent with every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProgressCounts {
    /// Steps with an output (generated or reused).
    pub done: usize,
    /// Steps failed or blocked.
    pub failed: usize,
    /// Steps in the plan (grows or shrinks as analyses plan their close-ups).
    pub total: usize,
    /// Credits charged so far in this run.
    pub credits_used: i64,
    /// Milliseconds since the run started.
    pub elapsed_ms: u64,
}

impl ProgressCounts {
    /// Steps with an output as a percentage of the plan, 0..=100.
    pub fn percentage(&self) -> i32 {
        if self.total == 0 {
            return 100;
        }
        ((self.done * 100) / self.total).min(100) as i32
    }
}

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum ProgressEvent {
    /// The run has its collection and an initial plan.
    Started {
        /// The collection being filled.
        collection_id: Uuid,
        /// The run's batch id.
        batch_id: Uuid,
        /// Counts.
        counts: ProgressCounts,
    },
    /// A step called its provider.
    StepStarted {
        /// The step.
        step: StepId,
        /// Counts.
        counts: ProgressCounts,
    },
    /// A step has its output.
    StepFinished {
        /// The step.
        step: StepId,
        /// Generated, cached or legacy cache.
        origin: StepOrigin,
        /// Credits charged for it.
        credits: i64,
        /// The step's wall time.
        elapsed_ms: u64,
        /// Counts.
        counts: ProgressCounts,
    },
    /// A step failed (after retries) or was blocked by its view's failed analysis.
    StepFailed {
        /// The step.
        step: StepId,
        /// Why.
        error: String,
        /// Counts.
        counts: ProgressCounts,
    },
    /// The run ended.
    Finished {
        /// Final collection status.
        status: CollectionStatus,
        /// Counts.
        counts: ProgressCounts,
    },
}

impl ProgressEvent {
    /// The counts the event carries.
    pub fn counts(&self) -> ProgressCounts {
        match self {
            ProgressEvent::Started { counts, .. }
            | ProgressEvent::StepStarted { counts, .. }
            | ProgressEvent::StepFinished { counts, .. }
            | ProgressEvent::StepFailed { counts, .. }
            | ProgressEvent::Finished { counts, .. } => *counts,
        }
    }
}

/// How a step's output came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepOrigin {
    /// The provider made it in this run (and it was charged).
    Generated,
    /// A completed file with the same inputs was reused, free.
    Cached,
    /// The analysis came from the legacy `revision_vision_analysis` table, free.
    LegacyCache,
    /// The provider failed; the file is recorded as failed, not charged.
    Failed,
    /// Not attempted because the view's analysis failed.
    Blocked,
    /// Not attempted because the run was stopped (cancelled, interrupted or shutting down).
    Cancelled,
}

/// A [`ProgressEvent`] as a job recorded it: numbered in the order of recording, so a reader
/// that saw event `id` asks for the ones after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobEvent {
    /// Increases with every event recorded, across all jobs.
    pub id: i64,
    /// The job.
    pub job_id: Uuid,
    /// The claim (attempt) whose run reported it, from 1.
    pub attempt: i32,
    /// What happened.
    pub event: ProgressEvent,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

impl ProgressEvent {
    /// The event's name, as in its JSON `event` field (`step_started` …).
    pub fn name(&self) -> &'static str {
        match self {
            ProgressEvent::Started { .. } => "started",
            ProgressEvent::StepStarted { .. } => "step_started",
            ProgressEvent::StepFinished { .. } => "step_finished",
            ProgressEvent::StepFailed { .. } => "step_failed",
            ProgressEvent::Finished { .. } => "finished",
        }
    }
}
