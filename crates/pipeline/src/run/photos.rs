//! Photo storage: a view's photo written through the blob protocol under its owner, and read
//! back (checked against its recorded hash) when a job or a retry runs.

use super::*;

/// Stores a view's photo. A photo the blob store refuses (too large, not an image) is the
/// caller's mistake.
pub(crate) async fn store_photo(
    blobs: &BlobStore,
    user_id: Uuid,
    input: &ViewInput,
) -> PipelineResult<StoredBlob> {
    blobs
        .put_source(
            user_id,
            &BlobContent::Bytes(Bytes::copy_from_slice(&input.photo)),
        )
        .await
        .map_err(|error| {
            if error.is_caller_error() {
                PipelineError::InvalidRequest(format!(
                    "the photo of view `{}`: {error}",
                    input.view
                ))
            } else {
                PipelineError::Blob(error)
            }
        })
}

/// Reads stored views' photos back, each checked against its recorded hash.
pub(crate) async fn load_views(
    blobs: &BlobStore,
    owner: Uuid,
    views: &[StoredView],
) -> PipelineResult<Vec<ViewInput>> {
    let mut inputs = Vec::with_capacity(views.len());
    for view in views {
        // A request names its photos by key: only the owner's own keys are read, whatever a
        // stored request says.
        match techpack_blobs::parse_key(&view.photo_key) {
            Some(techpack_blobs::KeyKind::Content {
                owner: key_owner, ..
            }) if key_owner == owner => {}
            _ => {
                return Err(PipelineError::InvalidRequest(format!(
                    "the photo of view `{}` ({}) is not one of this user's stored photos",
                    view.view, view.photo_key
                )));
            }
        }
        let photo = blobs.get_bytes(&view.photo_key).await?;
        if sha256_of(&photo) != view.photo_sha256 {
            return Err(PipelineError::Corrupt(format!(
                "the stored photo of view `{}` ({}) does not match its hash",
                view.view, view.photo_key
            )));
        }
        inputs.push(ViewInput {
            revision_id: view.revision_id,
            view: view.view.clone(),
            photo: Arc::from(photo.as_ref()),
            reference: view.reference.clone(),
        });
    }
    Ok(inputs)
}

pub(super) fn sha256_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
