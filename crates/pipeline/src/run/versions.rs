//! Versions: the row a step fills (a new file, a new version of the slot's file, or the
//! interrupted row of the same inputs), completing it with its output and credits, and
//! adding it to the pack's collection.

use super::*;

/// Whether `file` was made after `than`: a later version of the same file, else (another
/// lineage, e.g. after the manifest was archived) created later.
pub(super) fn is_newer(file: &TechFile, than: &TechFile) -> bool {
    if file.lineage_id == than.lineage_id {
        file.version > than.version
    } else {
        (file.created_at, file.id) > (than.created_at, than.id)
    }
}

impl Shared {
    /// Completes a step's row, in a batch with the other steps finishing now.
    pub(super) async fn complete(
        &self,
        id: Uuid,
        changes: FileChanges,
    ) -> PipelineResult<TechFile> {
        self.completions.submit((id, changes)).await
    }

    pub(super) fn section(&self, view: &ViewState, step: &StepId) -> CollectionItemInput {
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

    pub(super) async fn add_to_collection(
        &self,
        view: &ViewState,
        step: &StepId,
        file: &TechFile,
    ) -> PipelineResult<()> {
        let mut item = self.section(view, step);
        item.tech_file_id = file.id;
        self.collection_adds.submit(item).await
    }

    pub(super) fn step_metadata(&self, view: &ViewState, step: &StepId) -> Value {
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

    /// The processing row a step fills: the slot's unfinished row from the same inputs, else a
    /// new version of the slot's file, else a new file; keyed per (batch, view, slot) so a
    /// retried call returns the same row. The row is put in the collection at once, so a
    /// reader sees what is in progress.
    pub(super) async fn acquire_row(
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
    pub(super) async fn store_output(
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
    pub(super) async fn dual_write(
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
}
