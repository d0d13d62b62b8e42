//! Row shaping shared by both backends: what an in-place completion or a restore writes.

use techpack_model::{FileChanges, FileStatus, NewTechFile, Principal, TechFile, ValidationError};
use uuid::Uuid;

use crate::StoreError;

/// A user may only create rows they own; the service role may create anyone's.
pub(crate) fn check_owner(principal: Principal, owner: Uuid) -> Result<(), StoreError> {
    if principal.may_access(owner) {
        Ok(())
    } else {
        Err(StoreError::Forbidden(format!(
            "user_id {owner} is not the acting user: a user can only create their own rows"
        )))
    }
}

/// The row a processing (or failed) file becomes when its outputs arrive. Unlike a new
/// version, credits and the idempotency key stay unless changed, and the status defaults to
/// completed.
pub(crate) fn completed_row(
    current: &TechFile,
    changes: &FileChanges,
) -> Result<NewTechFile, StoreError> {
    if !matches!(current.status, FileStatus::Processing | FileStatus::Failed) {
        return Err(StoreError::Conflict(format!(
            "tech file {} is {}: only a processing or failed file is completed in place; create a new version instead",
            current.id, current.status
        )));
    }
    if changes.status == Some(FileStatus::Archived) {
        return Err(ValidationError::new("status", "archive a file with archive_tech_file").into());
    }
    let mut row = changes.overlay(current);
    row.status = changes.status.unwrap_or(FileStatus::Completed);
    row.credits_used = changes.credits_used.unwrap_or(current.credits_used);
    row.idempotency_key = changes
        .idempotency_key
        .clone()
        .or_else(|| current.idempotency_key.clone());
    if row.status != FileStatus::Failed {
        row.error_message = None;
    }
    row.validate()?;
    Ok(row)
}

/// The changes that restore a snapshot's content as a new version.
pub(crate) fn restore_changes(snapshot: &TechFile) -> FileChanges {
    FileChanges {
        view_type: snapshot.view_type.clone(),
        file_category: snapshot.file_category.clone(),
        file_url: snapshot.file_url.clone(),
        content_sha256: snapshot.content_sha256.clone(),
        content_size: snapshot.content_size,
        mime_type: snapshot.mime_type.clone(),
        analysis_data: Some(snapshot.analysis_data.clone()),
        metadata: Some(snapshot.metadata.clone()),
        ai_model: snapshot.ai_model.clone(),
        generation_prompt: snapshot.generation_prompt.clone(),
        generation_batch_id: snapshot.generation_batch_id,
        idempotency_key: None,
        credits_used: Some(0),
        confidence_score: snapshot.confidence_score,
        quality_score: snapshot.quality_score,
        status: Some(match snapshot.status {
            FileStatus::Archived => FileStatus::Completed,
            other => other,
        }),
        error_message: snapshot.error_message.clone(),
        change_description: Some(format!("restored from version {}", snapshot.version)),
    }
}

/// Status updates in place accept every status but archived (which has its own call).
pub(crate) fn check_status_update(
    status: FileStatus,
    error_message: &Option<String>,
) -> Result<(), StoreError> {
    if status == FileStatus::Archived {
        return Err(ValidationError::new("status", "use archive to archive a file").into());
    }
    if let Some(message) = error_message
        && message.len() > techpack_model::MAX_TEXT_BYTES
    {
        return Err(ValidationError::new("error_message", "is too long").into());
    }
    Ok(())
}
