//! Storing a file: the blob first, then the row that points at it, so a row never points at a
//! blob that was not written; then a check that cleanup did not remove the blob in between.

use std::path::PathBuf;

use bytes::Bytes;
use techpack_blobs::{BlobError, BlobStore, StoredBlob};
use techpack_model::{FileStatus, FileType, NewTechFile, Principal, TechFile};
use techpack_store::TechFileStore;
use uuid::Uuid;

use crate::HousekeepingError;

/// Where the content of an upload comes from. Kept (not consumed) so the content can be put
/// again if cleanup removed the blob while the row was being written.
#[derive(Debug, Clone)]
pub enum UploadSource {
    /// A local file, streamed (never read whole into memory).
    File(PathBuf),
    /// Bytes in memory.
    Bytes(Bytes),
}

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

/// Puts the source's content into the blob store for `owner` (streaming, hashing and sniffing
/// as it goes).
pub async fn put_source(
    blobs: &BlobStore,
    owner: Uuid,
    source: &UploadSource,
) -> Result<StoredBlob, HousekeepingError> {
    match source {
        UploadSource::File(path) => {
            let file =
                tokio::fs::File::open(path)
                    .await
                    .map_err(|source| HousekeepingError::Read {
                        path: path.clone(),
                        source,
                    })?;
            Ok(blobs.put_reader(owner, file).await?)
        }
        UploadSource::Bytes(bytes) => Ok(blobs.put_bytes(owner, bytes.clone()).await?),
    }
}

/// Stores a file: its blob, then a `completed` row whose `file_url` is the blob's key with the
/// hash, size and MIME type of what was stored, then [`ensure_blob`]. Returns the row.
pub async fn store_file(
    store: &dyn TechFileStore,
    blobs: &BlobStore,
    principal: Principal,
    source: &UploadSource,
    request: UploadRequest,
) -> Result<TechFile, HousekeepingError> {
    let blob = put_source(blobs, request.owner, source).await?;
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
    ensure_blob(blobs, &file, &blob, source).await?;
    Ok(file)
}

/// Makes sure the blob a freshly written row points at exists, putting the source again if it
/// does not. Cleanup deletes only while holding the store's writer lock and only keys no row
/// references, so once the row is committed the blob can no longer be deleted; if it is gone
/// now, cleanup removed it just before the row went in, and storing it again is safe.
pub async fn ensure_blob(
    blobs: &BlobStore,
    file: &TechFile,
    stored: &StoredBlob,
    source: &UploadSource,
) -> Result<(), HousekeepingError> {
    match blobs.head(&stored.key).await {
        Ok(_) => return Ok(()),
        Err(BlobError::NotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    tracing::warn!(key = %stored.key, file = %file.id, "blob removed by a concurrent cleanup before its row was written; storing it again");
    let again = put_source(blobs, file.user_id, source).await?;
    if again.key != stored.key {
        return Err(HousekeepingError::SourceChanged {
            key: stored.key.clone(),
            file_id: file.id,
        });
    }
    Ok(())
}
