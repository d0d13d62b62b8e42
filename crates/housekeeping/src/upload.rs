//! Storing a file through the one blob protocol (see `techpack_blobs::BlobContent`): the blob
//! first, then the row that points at it, then a check that cleanup did not remove the blob
//! in between.

use techpack_blobs::{BlobContent, BlobStore};
use techpack_model::{FileStatus, FileType, NewTechFile, Principal, TechFile};
use techpack_store::TechFileStore;
use uuid::Uuid;

use crate::HousekeepingError;

/// Where the content of an upload comes from (a local file, streamed, or bytes).
pub type UploadSource = BlobContent;

/// What the row of an uploaded file records besides the blob.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    /// The owner: the blob goes under their prefix and the row is theirs.
    pub owner: Uuid,
    /// The product idea.
    pub product_idea_id: Uuid,
    /// The revision, if any.
    pub revision_id: Option<Uuid>,
    /// What the file holds.
    pub file_type: FileType,
    /// The base view (front, back …).
    pub view_type: Option<String>,
    /// The close-up shot name or sub-category.
    pub file_category: Option<String>,
}

/// Stores a file: its blob, then a `completed` row whose `file_url` is the blob's key with the
/// hash, size and MIME type of what was stored, then the check that the blob is still there.
/// Returns the row.
pub async fn store_file(
    store: &dyn TechFileStore,
    blobs: &BlobStore,
    principal: Principal,
    source: &UploadSource,
    request: UploadRequest,
) -> Result<TechFile, HousekeepingError> {
    let blob = blobs.put_source(request.owner, source).await?;
    let mut row = NewTechFile::new(request.owner, request.product_idea_id, request.file_type);
    row.revision_id = request.revision_id;
    row.view_type = request.view_type;
    row.file_category = request.file_category;
    row.file_url = Some(blob.key.clone());
    row.content_sha256 = Some(blob.sha256.clone());
    row.content_size = Some(i64::try_from(blob.size).unwrap_or(i64::MAX));
    row.mime_type = Some(blob.mime.clone());
    row.status = FileStatus::Completed;
    let file = store.create_tech_file(principal, row).await?;
    blobs.ensure_stored(request.owner, &blob, source).await?;
    Ok(file)
}
