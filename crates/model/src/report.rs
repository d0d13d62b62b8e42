//! Analytics: per-product statistics and the monitoring queries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The specification's `getProductGenerationStats`: every stored version of the product's files counts,
/// since every version was generated (and charged) once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductStats {
    /// The product.
    pub product_idea_id: Uuid,
    /// Rows of every version.
    pub total_files: i64,
    /// Rows that are the latest version of their file.
    pub latest_files: i64,
    /// Credits of every version.
    pub total_credits_used: i64,
    /// Row counts by file type.
    pub files_by_type: BTreeMap<String, i64>,
    /// Row counts by status.
    pub files_by_status: BTreeMap<String, i64>,
}

/// Files created in the last 24 hours, by type and status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecentFilesRow {
    /// File type.
    pub file_type: String,
    /// Status.
    pub status: String,
    /// How many.
    pub count: i64,
}

/// Credits by product over the last 7 days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductCreditsRow {
    /// Product.
    pub product_idea_id: Uuid,
    /// Credits.
    pub total_credits: i64,
    /// Files.
    pub file_count: i64,
}

/// Collection completion by status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CollectionCompletionRow {
    /// Status.
    pub status: String,
    /// Average completion percentage.
    pub avg_completion: f64,
    /// How many collections.
    pub count: i64,
}

/// The specification's three monitoring queries, for the principal's rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MonitoringReport {
    /// Files in the last 24 hours by type and status.
    pub recent_files: Vec<RecentFilesRow>,
    /// Credits by product over 7 days, most first.
    pub credits_by_product: Vec<ProductCreditsRow>,
    /// Completion rates by collection status.
    pub collection_completion: Vec<CollectionCompletionRow>,
}
