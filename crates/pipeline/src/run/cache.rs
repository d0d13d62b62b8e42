//! The cache: the keys a step's inputs hash to, and reusing a slot's completed file made
//! from the same inputs at no charge (after checking its blobs are still there).

use super::*;

pub(super) fn sha256_hex(parts: &[&str]) -> String {
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
pub(super) fn view_cache_key(
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
pub(super) fn pack_key(request: &TechPackRequest, name: &str, views: &[Arc<ViewState>]) -> String {
    let closeups = request.options.closeups_per_view.to_string();
    let mut parts = vec!["techpack.pack/1", name, &closeups];
    parts.extend(views.iter().map(|view| view.cache_key.as_str()));
    sha256_hex(&parts)
}

pub(super) fn cache_key_of(file: &TechFile) -> Option<&str> {
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
pub(super) fn slot_key_of(file: &TechFile) -> Option<SlotKey> {
    Some(SlotKey {
        revision_id: file.revision_id,
        view: file.view_type.clone(),
        slot: file.metadata["slot"].as_str()?.to_owned(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SlotKey {
    pub(super) revision_id: Option<Uuid>,
    pub(super) view: Option<String>,
    pub(super) slot: String,
}
impl Shared {
    /// Whether every blob a cached file needs is stored with the size it recorded: a file
    /// whose output was lost (a bucket emptied, a folder restored from an old backup) is made
    /// again rather than reused, so a "completed" pack never points at nothing.
    pub(super) async fn outputs_intact(&self, file: &TechFile) -> PipelineResult<bool> {
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
    pub(super) async fn reuse(
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
                retryable: false,
                retry_after_ms: None,
            },
            analysis,
            view: view.clone(),
        }))
    }
}
