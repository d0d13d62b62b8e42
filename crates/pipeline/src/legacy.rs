//! Backfill of `tech_files` from the legacy `revision_vision_analysis` table.

use serde::{Deserialize, Serialize};
use serde_json::json;
use techpack_model::{FileStatus, FileType, NewTechFile, Principal};
use techpack_store::TechFileStore;
use uuid::Uuid;

use crate::error::PipelineResult;
use crate::run::LEGACY_LINK_FIELD;

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyImportReport {
    /// Legacy rows read.
    pub scanned: usize,
    /// Base-view files created from them.
    pub imported: usize,
    /// Rows an earlier import already copied.
    pub already_imported: usize,
    /// Rows that are mirrors of our own analyses (dual writes): their files exist already.
    pub mirrors_skipped: usize,
}

/// Copies every legacy analysis the principal can see into `tech_files` as a completed
/// base-view file (same product, revision, view, model and credits, the analysis as
/// `analysis_data`). Idempotent: each row is copied once, under the idempotency key
/// `legacy:{row id}`, so running it again creates nothing.
pub async fn import_legacy_analyses(
    store: &dyn TechFileStore,
    principal: Principal,
) -> PipelineResult<LegacyImportReport> {
    let mut report = LegacyImportReport::default();
    let mut after: Option<Uuid> = None;
    loop {
        let rows = store.list_legacy_analyses(principal, after, 200).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        for row in rows {
            report.scanned += 1;
            if row.analysis_data.get(LEGACY_LINK_FIELD).is_some() {
                report.mirrors_skipped += 1;
                continue;
            }
            let key = format!("legacy:{}", row.id);
            if store
                .find_by_idempotency_key(principal, row.user_id, &key)
                .await?
                .is_some()
            {
                report.already_imported += 1;
                continue;
            }
            let mut file = NewTechFile::new(row.user_id, row.product_idea_id, FileType::BaseView);
            file.revision_id = Some(row.revision_id);
            file.view_type = Some(row.view_type.clone());
            file.file_url = row.image_url.clone().filter(|url| !url.trim().is_empty());
            // Only a well-formed hash is kept; the legacy table never checked its column.
            file.content_sha256 = row.image_sha256.clone().filter(|sha| {
                sha.len() == 64
                    && sha
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            });
            file.analysis_data = row.analysis_data.clone();
            file.metadata = json!({
                "slot": "analysis",
                "source": "legacy_import",
                "legacy_id": row.id,
                "photo_sha256": row.image_sha256,
            });
            file.ai_model = row.model_used.clone();
            file.credits_used = row.credits_used;
            file.idempotency_key = Some(key);
            file.status = FileStatus::Completed;
            store.create_tech_file(principal, file).await?;
            report.imported += 1;
        }
    }
    Ok(report)
}
