//! Tech files: one row per version of a generated or uploaded file.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::kinds::{FileStatus, FileType};
use crate::validation::{
    MAX_PAGE_SIZE, ValidationError, check_credits, check_json_object, check_long_text,
    check_non_negative, check_score, check_sha256, check_short_text, check_url,
};

/// One stored version of a tech file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TechFile {
    /// This version's id.
    pub id: Uuid,
    /// The id of the first version: every version of one file shares it.
    pub lineage_id: Uuid,
    /// The product idea the file belongs to.
    pub product_idea_id: Uuid,
    /// The product revision the file was made from, if any.
    pub revision_id: Option<Uuid>,
    /// The owner.
    pub user_id: Uuid,
    /// What the file holds.
    pub file_type: FileType,
    /// The base view (front, back, side …) for base views, close-ups and sketches.
    pub view_type: Option<String>,
    /// The close-up shot name (collar, cuff …) or another sub-category.
    pub file_category: Option<String>,
    /// The blob key or URL of the file's content; absent while processing or after a failure.
    pub file_url: Option<String>,
    /// SHA-256 of the blob, lowercase hex.
    pub content_sha256: Option<String>,
    /// Size of the blob in bytes.
    pub content_size: Option<i64>,
    /// MIME type of the blob.
    pub mime_type: Option<String>,
    /// The structured result of the generation (JSON object).
    pub analysis_data: Value,
    /// Free-form metadata (JSON object).
    pub metadata: Value,
    /// The AI model (and version) that produced the file.
    pub ai_model: Option<String>,
    /// The prompt or parameters used.
    pub generation_prompt: Option<String>,
    /// The generation run that produced the file.
    pub generation_batch_id: Option<Uuid>,
    /// Makes a retried generation step land on the same row instead of charging again.
    pub idempotency_key: Option<String>,
    /// Credits this version cost.
    pub credits_used: i64,
    /// The generator's confidence, 0..1.
    pub confidence_score: Option<f64>,
    /// A quality score, 0..1.
    pub quality_score: Option<f64>,
    /// Processing state.
    pub status: FileStatus,
    /// Why the file failed, when it did.
    pub error_message: Option<String>,
    /// Version number within the lineage, from 1.
    pub version: i32,
    /// The version this one superseded.
    pub parent_file_id: Option<Uuid>,
    /// Whether this is the current version of its lineage.
    pub is_latest: bool,
    /// Who made this version (a user id; none for the service role).
    pub created_by: Option<Uuid>,
    /// Why this version was made.
    pub change_description: Option<String>,
    /// When the row was created.
    pub created_at: DateTime<Utc>,
    /// When the row last changed (maintained by the database).
    pub updated_at: DateTime<Utc>,
}

/// The input of `create_tech_file`: the first version of a new file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewTechFile {
    /// The product idea.
    pub product_idea_id: Uuid,
    /// The revision, if any.
    pub revision_id: Option<Uuid>,
    /// The owner. For a user principal this must be the user itself.
    pub user_id: Uuid,
    /// What the file holds.
    pub file_type: FileType,
    /// The base view.
    pub view_type: Option<String>,
    /// The close-up shot name or sub-category.
    pub file_category: Option<String>,
    /// The blob key or URL.
    pub file_url: Option<String>,
    /// SHA-256 of the blob.
    pub content_sha256: Option<String>,
    /// Size of the blob.
    pub content_size: Option<i64>,
    /// MIME type of the blob.
    pub mime_type: Option<String>,
    /// Structured result (JSON object).
    pub analysis_data: Value,
    /// Metadata (JSON object).
    pub metadata: Value,
    /// Model name.
    pub ai_model: Option<String>,
    /// Prompt or parameters.
    pub generation_prompt: Option<String>,
    /// Generation run.
    pub generation_batch_id: Option<Uuid>,
    /// Idempotency key: a second create with the same key (same user) returns the first row.
    pub idempotency_key: Option<String>,
    /// Credits charged.
    pub credits_used: i64,
    /// Confidence 0..1.
    pub confidence_score: Option<f64>,
    /// Quality 0..1.
    pub quality_score: Option<f64>,
    /// Initial status.
    pub status: FileStatus,
    /// Error message for a failed file.
    pub error_message: Option<String>,
}

impl NewTechFile {
    /// A new file with empty JSON documents, no credits and status `processing`.
    pub fn new(user_id: Uuid, product_idea_id: Uuid, file_type: FileType) -> Self {
        Self {
            product_idea_id,
            revision_id: None,
            user_id,
            file_type,
            view_type: None,
            file_category: None,
            file_url: None,
            content_sha256: None,
            content_size: None,
            mime_type: None,
            analysis_data: Value::Object(Default::default()),
            metadata: Value::Object(Default::default()),
            ai_model: None,
            generation_prompt: None,
            generation_batch_id: None,
            idempotency_key: None,
            credits_used: 0,
            confidence_score: None,
            quality_score: None,
            status: FileStatus::Processing,
            error_message: None,
        }
    }

    /// Checks every field against the shared rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_short_text("view_type", self.view_type.as_deref())?;
        check_short_text("file_category", self.file_category.as_deref())?;
        check_url("file_url", self.file_url.as_deref())?;
        check_sha256("content_sha256", self.content_sha256.as_deref())?;
        check_non_negative("content_size", self.content_size)?;
        check_short_text("mime_type", self.mime_type.as_deref())?;
        check_json_object("analysis_data", &self.analysis_data)?;
        check_json_object("metadata", &self.metadata)?;
        check_short_text("ai_model", self.ai_model.as_deref())?;
        check_long_text("generation_prompt", self.generation_prompt.as_deref())?;
        check_short_text("idempotency_key", self.idempotency_key.as_deref())?;
        check_credits("credits_used", self.credits_used)?;
        check_score("confidence_score", self.confidence_score)?;
        check_score("quality_score", self.quality_score)?;
        check_long_text("error_message", self.error_message.as_deref())?;
        if self.status == FileStatus::Archived {
            return Err(ValidationError::new(
                "status",
                "a new file cannot start archived",
            ));
        }
        Ok(())
    }
}

/// What a new version changes relative to the version it supersedes. Unset fields are carried
/// over, except credits (a new version costs only what it says) and the idempotency key — and,
/// for a version that starts `processing`, the outputs (see [`FileChanges::apply_to`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileChanges {
    /// New view.
    pub view_type: Option<String>,
    /// New shot name.
    pub file_category: Option<String>,
    /// New blob key or URL.
    pub file_url: Option<String>,
    /// New blob hash.
    pub content_sha256: Option<String>,
    /// New blob size.
    pub content_size: Option<i64>,
    /// New MIME type.
    pub mime_type: Option<String>,
    /// New structured result.
    pub analysis_data: Option<Value>,
    /// New metadata.
    pub metadata: Option<Value>,
    /// New model.
    pub ai_model: Option<String>,
    /// New prompt.
    pub generation_prompt: Option<String>,
    /// New generation run.
    pub generation_batch_id: Option<Uuid>,
    /// Idempotency key of the new version.
    pub idempotency_key: Option<String>,
    /// Credits the new version cost (default 0).
    pub credits_used: Option<i64>,
    /// New confidence.
    pub confidence_score: Option<f64>,
    /// New quality.
    pub quality_score: Option<f64>,
    /// New status (default: the superseded version's, unless it was archived).
    pub status: Option<FileStatus>,
    /// New error message.
    pub error_message: Option<String>,
    /// Why the version was made.
    pub change_description: Option<String>,
}

impl FileChanges {
    /// Checks every given field against the shared rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_short_text("view_type", self.view_type.as_deref())?;
        check_short_text("file_category", self.file_category.as_deref())?;
        check_url("file_url", self.file_url.as_deref())?;
        check_sha256("content_sha256", self.content_sha256.as_deref())?;
        check_non_negative("content_size", self.content_size)?;
        check_short_text("mime_type", self.mime_type.as_deref())?;
        if let Some(value) = &self.analysis_data {
            check_json_object("analysis_data", value)?;
        }
        if let Some(value) = &self.metadata {
            check_json_object("metadata", value)?;
        }
        check_short_text("ai_model", self.ai_model.as_deref())?;
        check_long_text("generation_prompt", self.generation_prompt.as_deref())?;
        check_short_text("idempotency_key", self.idempotency_key.as_deref())?;
        if let Some(credits) = self.credits_used {
            check_credits("credits_used", credits)?;
        }
        check_score("confidence_score", self.confidence_score)?;
        check_score("quality_score", self.quality_score)?;
        check_long_text("error_message", self.error_message.as_deref())?;
        check_long_text("change_description", self.change_description.as_deref())?;
        Ok(())
    }

    /// The row a new version would have: `parent` with these changes applied. Version,
    /// lineage and ids are left for the store to set.
    ///
    /// A version whose status is `processing` is being generated and has no output yet, so it
    /// starts without the parent's: file_url, content_sha256, content_size, mime_type,
    /// ai_model, generation_prompt, confidence_score, quality_score and error_message are
    /// empty and analysis_data is `{}` unless these changes give them. Otherwise a generation
    /// that then fails would leave a version that looks as if it had produced the parent's
    /// file. What identifies the file (lineage, product, revision, owner, type, view,
    /// category), its metadata and its generation run are still inherited. PostgreSQL's
    /// `create_tech_file_version` function follows the same rule.
    pub fn apply_to(&self, parent: &TechFile) -> NewTechFile {
        let mut row = self.overlay(parent);
        if row.status == FileStatus::Processing {
            row.file_url = self.file_url.clone();
            row.content_sha256 = self.content_sha256.clone();
            row.content_size = self.content_size;
            row.mime_type = self.mime_type.clone();
            row.analysis_data = self
                .analysis_data
                .clone()
                .unwrap_or_else(|| Value::Object(Default::default()));
            row.ai_model = self.ai_model.clone();
            row.generation_prompt = self.generation_prompt.clone();
            row.confidence_score = self.confidence_score;
            row.quality_score = self.quality_score;
            row.error_message = self.error_message.clone();
        }
        row
    }

    /// `current` with these changes applied, every unset field carried over whatever the
    /// status: what a processing file becomes when its outputs are filled in place, where
    /// outputs recorded earlier on the same row must survive. Credits and the idempotency
    /// key follow [`FileChanges::apply_to`]; the caller adjusts them.
    pub fn overlay(&self, current: &TechFile) -> NewTechFile {
        let status = self.status.unwrap_or(match current.status {
            FileStatus::Archived => FileStatus::Completed,
            other => other,
        });
        NewTechFile {
            product_idea_id: current.product_idea_id,
            revision_id: current.revision_id,
            user_id: current.user_id,
            file_type: current.file_type,
            view_type: self.view_type.clone().or_else(|| current.view_type.clone()),
            file_category: self
                .file_category
                .clone()
                .or_else(|| current.file_category.clone()),
            file_url: self.file_url.clone().or_else(|| current.file_url.clone()),
            content_sha256: self
                .content_sha256
                .clone()
                .or_else(|| current.content_sha256.clone()),
            content_size: self.content_size.or(current.content_size),
            mime_type: self.mime_type.clone().or_else(|| current.mime_type.clone()),
            analysis_data: self
                .analysis_data
                .clone()
                .unwrap_or_else(|| current.analysis_data.clone()),
            metadata: self
                .metadata
                .clone()
                .unwrap_or_else(|| current.metadata.clone()),
            ai_model: self.ai_model.clone().or_else(|| current.ai_model.clone()),
            generation_prompt: self
                .generation_prompt
                .clone()
                .or_else(|| current.generation_prompt.clone()),
            generation_batch_id: self.generation_batch_id.or(current.generation_batch_id),
            idempotency_key: self.idempotency_key.clone(),
            credits_used: self.credits_used.unwrap_or(0),
            confidence_score: self.confidence_score.or(current.confidence_score),
            quality_score: self.quality_score.or(current.quality_score),
            status,
            error_message: if status == FileStatus::Failed {
                self.error_message
                    .clone()
                    .or_else(|| current.error_message.clone())
            } else {
                self.error_message.clone()
            },
        }
    }
}

/// A superseded version, archived automatically by the database when a newer version arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TechFileVersion {
    /// The archive record's id.
    pub id: Uuid,
    /// The superseded row.
    pub tech_file_id: Uuid,
    /// The lineage it belongs to.
    pub lineage_id: Uuid,
    /// The owner.
    pub user_id: Uuid,
    /// The superseded version number.
    pub version: i32,
    /// The superseded row, whole, as JSON.
    pub snapshot: Value,
    /// Who made the change that superseded it.
    pub created_by: Option<Uuid>,
    /// Why.
    pub change_description: Option<String>,
    /// When it was superseded.
    pub created_at: DateTime<Utc>,
}

/// The position after the last row of a page: rows are ordered newest first by
/// (`created_at`, `id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileCursor {
    /// `created_at` of the last row returned.
    pub created_at: DateTime<Utc>,
    /// `id` of the last row returned.
    pub id: Uuid,
}

impl FileCursor {
    /// The cursor as one opaque token for command lines and URLs.
    pub fn to_token(&self) -> String {
        format!(
            "{}_{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        )
    }

    /// Parses a token made by [`FileCursor::to_token`].
    pub fn from_token(token: &str) -> Result<Self, ValidationError> {
        let invalid = || {
            ValidationError::new(
                "cursor",
                "must be a token returned as `next` by a previous page",
            )
        };
        let (micros, id) = token.split_once('_').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        Ok(Self {
            created_at: DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?,
            id: Uuid::parse_str(id).map_err(|_| invalid())?,
        })
    }
}

/// Filters of `get_latest_tech_files`. Archived files are left out unless asked for by status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileFilter {
    /// Only this product.
    pub product_idea_id: Option<Uuid>,
    /// Only this revision.
    pub revision_id: Option<Uuid>,
    /// Only this type.
    pub file_type: Option<FileType>,
    /// Only this view.
    pub view_type: Option<String>,
    /// Only this status (`archived` lists archived files).
    pub status: Option<FileStatus>,
    /// Only this generation run.
    pub generation_batch_id: Option<Uuid>,
    /// Page size (default 50, at most [`MAX_PAGE_SIZE`]).
    pub limit: Option<u32>,
    /// Continue after this row.
    pub after: Option<FileCursor>,
}

impl FileFilter {
    /// The page size to use, checked against the limit.
    pub fn page_size(&self) -> Result<u32, ValidationError> {
        match self.limit {
            None => Ok(50),
            Some(0) => Err(ValidationError::new("limit", "must be at least 1")),
            Some(limit) if limit > MAX_PAGE_SIZE => Err(ValidationError::new(
                "limit",
                format!("must be at most {MAX_PAGE_SIZE}; page through with the cursor"),
            )),
            Some(limit) => Ok(limit),
        }
    }
}

/// One page of files and the cursor of the next, if there is more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FilePage {
    /// The rows, newest first.
    pub files: Vec<TechFile>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<FileCursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> NewTechFile {
        NewTechFile::new(Uuid::new_v4(), Uuid::new_v4(), FileType::BaseView)
    }

    #[test]
    fn rejects_each_bad_field_by_name() {
        let mut bad = file();
        bad.credits_used = -1;
        assert_eq!(bad.validate().unwrap_err().field, "credits_used");
        let mut bad = file();
        bad.confidence_score = Some(1.5);
        assert_eq!(bad.validate().unwrap_err().field, "confidence_score");
        let mut bad = file();
        bad.file_url = Some(" ".into());
        assert_eq!(bad.validate().unwrap_err().field, "file_url");
        let mut bad = file();
        bad.metadata = serde_json::json!({ "blob": "x".repeat(crate::MAX_JSON_BYTES) });
        assert_eq!(bad.validate().unwrap_err().field, "metadata");
        let mut bad = file();
        bad.analysis_data = serde_json::json!([1, 2]);
        assert_eq!(bad.validate().unwrap_err().field, "analysis_data");
        assert!(file().validate().is_ok());
    }

    #[test]
    fn refuses_nul_characters_in_text_and_json_by_field() {
        let mut bad = file();
        bad.view_type = Some("front\0".into());
        assert_eq!(bad.validate().unwrap_err().field, "view_type");
        let mut bad = file();
        bad.error_message = Some("a\0b".into());
        assert_eq!(bad.validate().unwrap_err().field, "error_message");
        let mut bad = file();
        bad.metadata = serde_json::json!({ "nested": ["ok", "n\u{0}ul"] });
        let error = bad.validate().unwrap_err();
        assert_eq!(error.field, "metadata");
        assert!(error.rule.contains("NUL"), "{error}");
        let mut bad = file();
        bad.analysis_data = serde_json::json!({ "k\u{0}ey": 1 });
        assert_eq!(bad.validate().unwrap_err().field, "analysis_data");
        let changes = FileChanges {
            change_description: Some("why\0".into()),
            ..FileChanges::default()
        };
        assert_eq!(changes.validate().unwrap_err().field, "change_description");
    }

    fn completed_parent() -> TechFile {
        let now = Utc::now();
        let id = Uuid::new_v4();
        TechFile {
            id,
            lineage_id: id,
            product_idea_id: Uuid::new_v4(),
            revision_id: Some(Uuid::new_v4()),
            user_id: Uuid::new_v4(),
            file_type: FileType::Sketch,
            view_type: Some("front".into()),
            file_category: Some("outline".into()),
            file_url: Some("u/ab/sketch.svg".into()),
            content_sha256: Some("ab".repeat(32)),
            content_size: Some(42),
            mime_type: Some("image/svg+xml".into()),
            analysis_data: serde_json::json!({"callouts": [1]}),
            metadata: serde_json::json!({"slot": "sketch"}),
            ai_model: Some("model/1".into()),
            generation_prompt: Some("draw".into()),
            generation_batch_id: Some(Uuid::new_v4()),
            idempotency_key: Some("key".into()),
            credits_used: 1,
            confidence_score: Some(0.8),
            quality_score: Some(0.7),
            status: FileStatus::Completed,
            error_message: None,
            version: 1,
            parent_file_id: None,
            is_latest: true,
            created_by: None,
            change_description: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_processing_version_starts_without_the_parents_outputs() {
        let parent = completed_parent();
        let changes = FileChanges {
            status: Some(FileStatus::Processing),
            ..FileChanges::default()
        };
        let row = changes.apply_to(&parent);
        assert_eq!(row.status, FileStatus::Processing);
        assert_eq!(
            (
                &row.file_url,
                &row.content_sha256,
                row.content_size,
                &row.mime_type
            ),
            (&None, &None, None, &None)
        );
        assert_eq!(row.analysis_data, serde_json::json!({}));
        assert_eq!((&row.ai_model, &row.generation_prompt), (&None, &None));
        assert_eq!((row.confidence_score, row.quality_score), (None, None));
        assert_eq!(row.error_message, None);
        // What names the file is kept.
        assert_eq!(row.revision_id, parent.revision_id);
        assert_eq!(row.view_type, parent.view_type);
        assert_eq!(row.file_category, parent.file_category);
        assert_eq!(row.metadata, parent.metadata);
        assert_eq!(row.generation_batch_id, parent.generation_batch_id);
        // Outputs the changes do give are kept.
        let given = FileChanges {
            status: Some(FileStatus::Processing),
            mime_type: Some("image/png".into()),
            analysis_data: Some(serde_json::json!({"draft": true})),
            ..FileChanges::default()
        }
        .apply_to(&parent);
        assert_eq!(given.mime_type.as_deref(), Some("image/png"));
        assert_eq!(given.analysis_data, serde_json::json!({"draft": true}));
        // A processing parent versioned without a status gives a processing version too.
        let mut processing = parent.clone();
        processing.status = FileStatus::Processing;
        assert_eq!(FileChanges::default().apply_to(&processing).file_url, None);
    }

    #[test]
    fn other_versions_and_in_place_fills_inherit_everything() {
        let parent = completed_parent();
        let row = FileChanges::default().apply_to(&parent);
        assert_eq!(row.status, FileStatus::Completed);
        assert_eq!(row.file_url, parent.file_url);
        assert_eq!(row.analysis_data, parent.analysis_data);
        assert_eq!(row.quality_score, parent.quality_score);
        let mut processing = parent.clone();
        processing.status = FileStatus::Processing;
        let filled = FileChanges::default().overlay(&processing);
        assert_eq!(filled.file_url, parent.file_url);
        assert_eq!(filled.ai_model, parent.ai_model);
    }

    #[test]
    fn cursor_tokens_round_trip() {
        let cursor = FileCursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(FileCursor::from_token(&cursor.to_token()).unwrap(), cursor);
        assert_eq!(
            FileCursor::from_token("nonsense").unwrap_err().field,
            "cursor"
        );
    }
}
