//! Collections: groups of files that belong together, such as one complete tech pack.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::file::TechFile;
use crate::kinds::{CollectionStatus, CollectionType};
use crate::validation::{ValidationError, check_json_object, check_long_text, check_short_text};

/// A group of files with its generation progress and the credits its files cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Collection {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// The product idea.
    pub product_idea_id: Uuid,
    /// Display name.
    pub name: String,
    /// Longer description.
    pub description: Option<String>,
    /// What it groups.
    pub collection_type: CollectionType,
    /// Generation state.
    pub status: CollectionStatus,
    /// Progress, 0..=100.
    pub completion_percentage: i32,
    /// The sum of its files' credits, kept by the database.
    pub total_credits: i64,
    /// The generation run that fills it, if any.
    pub generation_batch_id: Option<Uuid>,
    /// Free-form metadata (JSON object).
    pub metadata: Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change (maintained by the database).
    pub updated_at: DateTime<Utc>,
    /// When it reached a final status.
    pub completed_at: Option<DateTime<Utc>>,
    /// How many steps the run that filled it planned (its files other than the manifest, and
    /// the steps that never got one): the base of its percentage once the run is over.
    #[serde(default)]
    pub planned_steps: Option<i32>,
}

/// The input of `create_tech_file_collection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewCollection {
    /// Owner.
    pub user_id: Uuid,
    /// The product idea.
    pub product_idea_id: Uuid,
    /// Display name.
    pub name: String,
    /// Longer description.
    pub description: Option<String>,
    /// What it groups.
    pub collection_type: CollectionType,
    /// The generation run that fills it.
    pub generation_batch_id: Option<Uuid>,
    /// Metadata (JSON object).
    pub metadata: Value,
}

impl NewCollection {
    /// A collection with no description, batch or metadata.
    pub fn new(
        user_id: Uuid,
        product_idea_id: Uuid,
        name: impl Into<String>,
        collection_type: CollectionType,
    ) -> Self {
        Self {
            user_id,
            product_idea_id,
            name: name.into(),
            description: None,
            collection_type,
            generation_batch_id: None,
            metadata: Value::Object(Default::default()),
        }
    }

    /// Checks every field against the shared rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.name.trim().is_empty() {
            return Err(ValidationError::new("name", "must not be empty"));
        }
        check_short_text("name", Some(&self.name))?;
        check_long_text("description", self.description.as_deref())?;
        check_json_object("metadata", &self.metadata)
    }
}

/// A file's place in a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CollectionItem {
    /// Id.
    pub id: Uuid,
    /// The collection.
    pub collection_id: Uuid,
    /// The file version.
    pub tech_file_id: Uuid,
    /// Owner (the collection's).
    pub user_id: Uuid,
    /// Position within the collection (ascending).
    pub display_order: i32,
    /// Section heading (e.g. "base_views", "closeups", "sketches").
    pub section: Option<String>,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

/// One file to add to a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CollectionItemInput {
    /// The file version.
    pub tech_file_id: Uuid,
    /// Position; `None` puts it after the last item.
    pub display_order: Option<i32>,
    /// Section heading.
    pub section: Option<String>,
}

impl CollectionItemInput {
    /// Checks every field against the shared rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(order) = self.display_order
            && order < 0
        {
            return Err(ValidationError::new(
                "display_order",
                "must not be negative",
            ));
        }
        check_short_text("section", self.section.as_deref())
    }
}

/// A collection with its files in display order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CollectionWithFiles {
    /// The collection.
    pub collection: Collection,
    /// Its items with their files, by section order then display order.
    pub items: Vec<(CollectionItem, TechFile)>,
}

/// A progress update of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CollectionProgress {
    /// Progress, 0..=100.
    pub completion_percentage: i32,
    /// New status.
    pub status: CollectionStatus,
    /// The steps the run planned, recorded with its final status; `None` keeps what is
    /// recorded. Once the run is over the database keeps the percentage and status current
    /// from the files (a file marked failed later makes the pack partial) against this count.
    #[serde(default)]
    pub planned_steps: Option<i32>,
}

impl CollectionProgress {
    /// A progress update that leaves the planned steps as they are.
    pub fn new(completion_percentage: i32, status: CollectionStatus) -> Self {
        Self {
            completion_percentage,
            status,
            planned_steps: None,
        }
    }

    /// Checks the percentage.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(0..=100).contains(&self.completion_percentage) {
            return Err(ValidationError::new(
                "completion_percentage",
                format!(
                    "must be between 0 and 100 (got {})",
                    self.completion_percentage
                ),
            ));
        }
        if self.planned_steps.is_some_and(|steps| steps < 0) {
            return Err(ValidationError::new(
                "planned_steps",
                "must not be negative",
            ));
        }
        Ok(())
    }
}
