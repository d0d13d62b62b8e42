//! The one way techpack stores a blob that a row will point at: the blob first, then the row,
//! then a check that the blob is still there.
//!
//! 1. [`BlobStore::put_source`] stores the content. A put of content that already exists
//!    rewrites it, refreshing its modification time, so an upload in flight always holds a
//!    young blob that cleanup's grace period spares.
//! 2. The caller commits the row that references the blob. From then on cleanup cannot delete
//!    it: cleanup deletes only under the store's lock on blob references, and only keys no
//!    reference names.
//! 3. [`BlobStore::ensure_stored`] heads the blob and puts the content again when it is gone:
//!    cleanup removed it between step 1 and step 2 (the only window left), and storing it
//!    again is safe now that the row protects it.
//!
//! Every writer — uploads, the orchestrator's outputs and photos, queued jobs' photos — goes
//! through these two calls, so there is one protocol to reason about.

use std::path::PathBuf;

use bytes::Bytes;
use uuid::Uuid;

use crate::error::BlobError;
use crate::store::{BlobStore, StoredBlob};

/// Where the content of a blob comes from. Kept (not consumed) so the content can be put again
/// if cleanup removed the blob while its row was being written.
#[derive(Debug, Clone)]
pub enum BlobContent {
    /// A local file, streamed (never read whole into memory).
    File(PathBuf),
    /// Bytes in memory.
    Bytes(Bytes),
}

impl From<Bytes> for BlobContent {
    fn from(bytes: Bytes) -> Self {
        BlobContent::Bytes(bytes)
    }
}

impl From<Vec<u8>> for BlobContent {
    fn from(bytes: Vec<u8>) -> Self {
        BlobContent::Bytes(Bytes::from(bytes))
    }
}

impl BlobStore {
    /// Step 1: stores `content` for `owner` (streaming a file, hashing and sniffing as it goes).
    pub async fn put_source(
        &self,
        owner: Uuid,
        content: &BlobContent,
    ) -> Result<StoredBlob, BlobError> {
        match content {
            BlobContent::File(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|source| BlobError::Read {
                        path: path.clone(),
                        source,
                    })?;
                self.put_reader(owner, file).await
            }
            BlobContent::Bytes(bytes) => self.put_bytes(owner, bytes.clone()).await,
        }
    }

    /// Step 3, once the row that points at `stored` is committed: makes sure the blob exists,
    /// putting `content` again if it does not. Returns whether it had to.
    pub async fn ensure_stored(
        &self,
        owner: Uuid,
        stored: &StoredBlob,
        content: &BlobContent,
    ) -> Result<bool, BlobError> {
        match self.head(&stored.key).await {
            Ok(_) => return Ok(false),
            Err(BlobError::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
        tracing::warn!(key = %stored.key, "blob removed by a concurrent cleanup before its row was written; storing it again");
        let again = self.put_source(owner, content).await?;
        if again.key != stored.key {
            return Err(BlobError::ContentChanged {
                key: stored.key.clone(),
            });
        }
        Ok(true)
    }
}
