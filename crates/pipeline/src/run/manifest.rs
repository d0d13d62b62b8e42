//! The complete-pack manifest: the one file that lists every output of the pack, written
//! last, older manifests of the same pack archived.

use super::*;

impl Shared {
    /// Writes the `complete_pack` manifest that closes the run: a JSON blob listing every file
    /// of the pack. The manifest is one file per product and collection name, versioned; an
    /// unchanged manifest is not written again. The collection lists only this run's
    /// manifest: the versions earlier runs of it added (before a `--retry-failed` or a
    /// resumed job) are taken out.
    pub(super) async fn write_manifest(
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
    pub(super) async fn remove_older_manifests(&self, current: &TechFile) -> PipelineResult<()> {
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
