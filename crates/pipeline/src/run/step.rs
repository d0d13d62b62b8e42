//! One step: cache, row, generate, store, and how a failed or cancelled step is recorded.

use super::*;

pub(super) async fn run_step(
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

    // 1b. Legacy cache, for analyses only (the specification's functions kept only analyses there).
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
        // Generate under a concurrency permit. Once: the provider owns the one retry policy
        // (a second layer here would multiply its calls).
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
        Ok(Some((
            generate(shared.provider.as_ref(), &photo, &work).await,
            1,
        )))
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
                retryable: true,
                retry_after: None,
            }),
        },
        Err(error) => Err(StepError::generation(&error)),
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
                    retryable: false,
                    retry_after_ms: None,
                },
                analysis,
                view,
            })
        }
        Err(StepError {
            message,
            kind,
            retryable,
            retry_after,
        }) => {
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
                    retryable,
                    retry_after_ms: retry_after.map(|wait| wait.as_millis() as u64),
                },
                analysis: None,
                view,
            })
        }
    }
}

/// Why a step failed: the message recorded on its file, the kind of failure, and whether
/// running the job again can help (a provider outage) or not (a photo that is not an image, a
/// refused key, an answer that breaks the schema).
#[derive(Debug, Clone)]
pub(super) struct StepError {
    pub(super) message: String,
    pub(super) kind: ErrorKind,
    pub(super) retryable: bool,
    pub(super) retry_after: Option<Duration>,
}

impl StepError {
    /// A failure of the store or the blob store: another run may pass unless the request
    /// itself is wrong.
    pub(super) fn of(error: &impl ClassifiedError, message: String) -> Self {
        Self {
            message,
            kind: error.kind(),
            retryable: !error.kind().is_caller_error(),
            retry_after: None,
        }
    }

    /// A provider's failure: the provider says whether it may pass, and for how long to wait.
    pub(super) fn generation(error: &GenerateError) -> Self {
        Self {
            message: error.to_string(),
            kind: error.kind(),
            retryable: error.is_retryable(),
            retry_after: error.retry_after(),
        }
    }
}

/// Waits until the analysis a close-up or sketch was made from is recorded; an `Err` is the
/// step's failure message when it could not be.
pub(super) async fn analysis_recorded(work: &StepWork) -> Result<(), String> {
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

pub(super) fn corrupt_json(error: serde_json::Error) -> PipelineError {
    PipelineError::Corrupt(format!("serialising an output to JSON: {error}"))
}

/// Calls the provider once for the step's work.
pub(super) async fn generate(
    provider: &dyn Provider,
    photo: &ViewPhoto,
    work: &StepWork,
) -> Result<Output, GenerateError> {
    match work {
        StepWork::Analysis { .. } => provider.analyze(photo).await.map(Output::Analysis),
        StepWork::Closeup { analysis, shot, .. } => provider
            .closeup(photo, analysis, shot)
            .await
            .map(Output::Closeup),
        StepWork::Sketch { analysis, .. } => {
            provider.sketch(photo, analysis).await.map(Output::Sketch)
        }
    }
}

impl Shared {
    /// Records a step the run stopped before it ran: its unfinished row (when it has one)
    /// becomes failed with the reason, not charged, so `--retry-failed` or a resumed job
    /// redoes it and nothing stays `processing`.
    pub(super) async fn cancel_step(
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
                retryable: true,
                retry_after_ms: None,
            },
            analysis: None,
            view: view.clone(),
        })
    }
}
