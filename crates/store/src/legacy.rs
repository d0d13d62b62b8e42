//! The legacy `revision_vision_analysis` table: the specification's generation functions read it as a
//! cache and keep writing it for backwards compatibility.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A legacy analysis row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyAnalysis {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Product.
    pub product_idea_id: Uuid,
    /// Revision.
    pub revision_id: Uuid,
    /// View (front, back …).
    pub view_type: String,
    /// The analysed image's URL or blob key.
    pub image_url: Option<String>,
    /// SHA-256 of the analysed image.
    pub image_sha256: Option<String>,
    /// The analysis.
    pub analysis_data: Value,
    /// The model.
    pub model_used: Option<String>,
    /// Credits charged.
    pub credits_used: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The input of `write_legacy_analysis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewLegacyAnalysis {
    /// Owner.
    pub user_id: Uuid,
    /// Product.
    pub product_idea_id: Uuid,
    /// Revision.
    pub revision_id: Uuid,
    /// View.
    pub view_type: String,
    /// Image URL or blob key.
    pub image_url: Option<String>,
    /// SHA-256 of the image.
    pub image_sha256: Option<String>,
    /// The analysis (a JSON object).
    pub analysis_data: Value,
    /// The model.
    pub model_used: Option<String>,
    /// Credits charged.
    pub credits_used: i64,
}

impl NewLegacyAnalysis {
    pub(crate) fn validate(&self) -> Result<(), techpack_model::ValidationError> {
        use techpack_model::ValidationError;
        if self.view_type.trim().is_empty() {
            return Err(ValidationError::new("view_type", "must not be empty"));
        }
        if !self.analysis_data.is_object() {
            return Err(ValidationError::new(
                "analysis_data",
                "must be a JSON object",
            ));
        }
        if self.credits_used < 0 {
            return Err(ValidationError::new("credits_used", "must not be negative"));
        }
        Ok(())
    }
}
