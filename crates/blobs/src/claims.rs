//! Which databases write to a blob store. Content keys carry no database, so a store shared
//! by two databases looks, to each, full of blobs it has no rows for: cleanup on either would
//! delete the other's. Each database that writes records itself here, and cleanup asks first.

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use uuid::Uuid;

use crate::error::BlobError;
use crate::store::BlobStore;

/// The folder of the claims, outside the content layout (cleanup leaves it alone).
pub const CLAIMS_DIR: &str = "_techpack/databases";

impl BlobStore {
    /// Records that the database `database_id` writes to this store (once: an existing claim
    /// is left as it is).
    pub async fn claim_for_database(&self, database_id: Uuid) -> Result<(), BlobError> {
        let path = Path::from(format!("{CLAIMS_DIR}/{database_id}"));
        let key = path.to_string();
        match self.object_store().head(&path).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(BlobError::from_store(&key, error)),
        }
        let body = serde_json::json!({
            "database_id": database_id,
            "claimed_at": chrono::Utc::now(),
        });
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .object_store()
            .put_opts(&path, PutPayload::from(body.to_string()), options)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(error) => Err(BlobError::from_store(&key, error)),
        }
    }

    /// The databases that have recorded that they write to this store.
    pub async fn claiming_databases(&self) -> Result<Vec<Uuid>, BlobError> {
        use futures::TryStreamExt;
        let prefix = Path::from(CLAIMS_DIR);
        let listed: Vec<_> = self
            .object_store()
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|error| BlobError::from_store(CLAIMS_DIR, error))?;
        let mut ids: Vec<Uuid> = listed
            .iter()
            .filter_map(|meta| meta.location.filename())
            .filter_map(|name| Uuid::parse_str(name).ok())
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}
