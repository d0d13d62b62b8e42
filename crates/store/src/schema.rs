//! What a migrated database must contain, for `techpack migrate verify` (the seed's
//! apply-tech-files-migration check), and migration status.

use serde::{Deserialize, Serialize};

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// PostgreSQL (or Supabase).
    Postgres,
    /// SQLite, the embedded default.
    Sqlite,
}

/// One migration and whether it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationInfo {
    /// Version (a timestamp).
    pub version: i64,
    /// Description from the file name.
    pub description: String,
    /// Whether it is applied.
    pub applied: bool,
}

/// The result of a schema check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaReport {
    /// How many objects were checked.
    pub checked: usize,
    /// The objects that are missing, as `kind name` (e.g. `index tech_files_status_idx`).
    pub missing: Vec<String>,
}

impl SchemaReport {
    /// Whether nothing is missing.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

pub(crate) const TABLES: &[&str] = &[
    "tech_files",
    "tech_file_versions",
    "tech_file_collections",
    "tech_file_collection_items",
    "revision_vision_analysis",
    "generation_jobs",
    "blob_references",
    "techpack_instance",
];

pub(crate) const INDEXES: &[&str] = &[
    "tech_files_product_revision_idx",
    "tech_files_user_id_idx",
    "tech_files_file_type_idx",
    "tech_files_product_latest_idx",
    "tech_files_user_latest_idx",
    "tech_files_generation_batch_idx",
    "tech_files_status_idx",
    "tech_files_created_at_idx",
    "tech_files_parent_file_idx",
    "tech_files_file_url_idx",
    "tech_files_one_latest_per_lineage",
    "tech_files_user_idempotency_key",
    "tech_file_versions_user_id_idx",
    "tech_file_collections_user_product_idx",
    "tech_file_collections_status_idx",
    "tech_file_collection_items_user_id_idx",
    "tech_file_collection_items_file_idx",
    "tech_file_collection_items_order_idx",
    "revision_vision_analysis_lookup_idx",
    "revision_vision_analysis_user_id_idx",
    "generation_jobs_claim_idx",
    "generation_jobs_user_running_idx",
    "generation_jobs_user_created_idx",
    "blob_references_key_idx",
    "blob_references_user_idx",
    "generation_jobs_active_request_key",
    "generation_jobs_user_idempotency_key",
    "generation_jobs_product_running_idx",
    "generation_jobs_batch_idx",
];

pub(crate) const POSTGRES_TRIGGERS: &[&str] = &[
    "tech_files_before_insert",
    "tech_files_guard_update",
    "tech_files_touch_updated_at",
    "tech_files_after_credits_change",
    "tech_file_collections_touch_updated_at",
    "tech_file_collection_items_after_change",
    "revision_vision_analysis_touch_updated_at",
    "generation_jobs_touch_updated_at",
    "generation_jobs_notify",
    "tech_files_blob_references",
    "tech_file_collections_blob_references",
    "generation_jobs_blob_references",
    "revision_vision_analysis_blob_references",
    "tech_file_collection_items_one_version",
    "tech_files_after_status_change",
    "generation_jobs_after_end",
];

pub(crate) const SQLITE_TRIGGERS: &[&str] = &[
    "tech_files_before_insert",
    "tech_files_before_insert_first_version",
    "tech_files_guard_update",
    "tech_files_touch_updated_at",
    "tech_files_after_credits_change",
    "tech_file_collection_items_after_insert",
    "tech_file_collection_items_after_delete",
    "tech_file_collections_touch_updated_at",
    "revision_vision_analysis_touch_updated_at",
    "generation_jobs_touch_updated_at",
    "tech_files_blob_references_insert",
    "tech_files_blob_references_update",
    "tech_files_blob_references_delete",
    "tech_file_collections_blob_references_insert",
    "tech_file_collections_blob_references_update",
    "tech_file_collections_blob_references_delete",
    "generation_jobs_blob_references_insert",
    "generation_jobs_blob_references_update",
    "generation_jobs_blob_references_delete",
    "revision_vision_analysis_blob_references_insert",
    "revision_vision_analysis_blob_references_update",
    "revision_vision_analysis_blob_references_delete",
    "tech_file_collection_items_one_version",
    "tech_file_collection_items_one_version_move",
    "tech_files_after_status_change",
    "generation_jobs_after_end",
];

pub(crate) const POSTGRES_FUNCTIONS: &[&str] = &[
    "techpack_current_user_id",
    "techpack_touch_updated_at",
    "tech_files_before_insert",
    "tech_files_guard_update",
    "tech_file_collections_recount_credits",
    "tech_file_collection_items_after_change",
    "tech_files_after_credits_change",
    "tech_files_after_credits_change_statement",
    "create_tech_file_version",
    "generation_jobs_notify",
    "techpack_blob_entries",
    "techpack_view_photo_entries",
    "techpack_file_blob_entries",
    "techpack_collection_blob_entries",
    "techpack_job_blob_entries",
    "techpack_replace_blob_references",
    "techpack_tech_files_blob_references",
    "techpack_collections_blob_references",
    "techpack_jobs_blob_references",
    "techpack_legacy_blob_references",
    "techpack_one_version_per_collection",
    "techpack_recount_collection_progress",
    "techpack_tech_files_after_status_change",
    "techpack_generation_jobs_after_end",
];

pub(crate) const SQLITE_VIEWS: &[&str] = &[
    "tech_files_doc",
    "tech_file_versions_doc",
    "tech_file_collections_doc",
    "tech_file_collection_items_doc",
    "revision_vision_analysis_doc",
    "generation_jobs_doc",
    "tech_files_blob_entries",
    "tech_file_collections_blob_entries",
    "generation_jobs_blob_entries",
    "tech_file_collections_progress",
    "blob_references_doc",
];

pub(crate) const POSTGRES_POLICIES: &[&str] = &[
    "tech_files_select_own",
    "tech_files_insert_own",
    "tech_files_update_own",
    "tech_file_versions_select_own",
    "tech_file_collections_select_own",
    "tech_file_collections_insert_own",
    "tech_file_collections_update_own",
    "tech_file_collections_delete_own",
    "tech_file_collection_items_select_own",
    "tech_file_collection_items_insert_own",
    "tech_file_collection_items_update_own",
    "tech_file_collection_items_delete_own",
    "revision_vision_analysis_select_own",
    "revision_vision_analysis_insert_own",
    "revision_vision_analysis_update_own",
    "generation_jobs_select_own",
    "generation_jobs_insert_own",
    "generation_jobs_update_own",
];

/// Compares what exists with what must, kind by kind.
pub(crate) fn missing(
    kind: &str,
    expected: &[&str],
    present: &[String],
    report: &mut SchemaReport,
) {
    for name in expected {
        report.checked += 1;
        if !present.iter().any(|p| p == name) {
            report.missing.push(format!("{kind} {name}"));
        }
    }
}
