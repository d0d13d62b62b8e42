//! The step graph: each view's analysis first, then its close-ups and sketch as soon as the
//! analysis is recorded, run with bounded concurrency; progress written in the background.

use super::*;

/// The work of one step.
pub(super) enum StepWork {
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
    pub(super) fn is_analysis(&self) -> bool {
        matches!(self, StepWork::Analysis { .. })
    }
}

// One output lives per running step and moves straight into the store: boxing the analysis
// would save nothing worth an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Output {
    Analysis(Generated<Analysis>),
    Closeup(Generated<Closeup>),
    Sketch(Generated<Sketch>),
}

pub(super) struct StepDone {
    pub(super) report: StepReport,
    /// The analysis, when this was a successful analysis step.
    pub(super) analysis: Option<Arc<Analysis>>,
    pub(super) view: Arc<ViewState>,
}

/// Writes the collection's completion percentage while a run goes on, off the steps' path: a
/// step never waits for it. At most one write per [`PROGRESS_WRITE_INTERVAL`], only when the
/// percentage grew; readers poll the collection, and a write per step would put a round trip
/// on every step of a single-writer database. Stops when `done` is cancelled, after the write
/// in hand, so the final status is always written after it.
pub(super) async fn write_progress_in_background(
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
pub(super) type AnalysisGate = tokio::sync::watch::Receiver<Option<Result<(), String>>>;

/// An analysis the provider has just returned, before its row is recorded.
pub(super) struct AnalysisReady {
    pub(super) view: Arc<ViewState>,
    pub(super) analysis: Arc<Analysis>,
    pub(super) gate: AnalysisGate,
}

/// Runs the graph: analyses first, each view's close-ups and sketch as soon as its analysis
/// is generated, all under the shared concurrency limit.
pub(super) async fn run_graph(
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
                    let (retryable, retry_after_ms) =
                        (done.report.retryable, done.report.retry_after_ms);
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
                            retryable,
                            retry_after_ms,
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
pub(super) async fn spawn_dependents(
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
