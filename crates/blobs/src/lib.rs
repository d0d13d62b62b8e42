//! Blob storage of techpack: the files behind `tech_files` rows (product photos, close-ups,
//! sketches, analyses, PDF exports), content-addressed per owner on a local directory, in
//! memory or on S3, plus signed URLs to hand them out.
//!
//! Writes go blob first, row second: [`BlobStore::put_stream`] returns the key, hash, size and
//! type the row records, so a row never points at a missing blob; a blob without a row is an
//! orphan that cleanup finds with [`BlobStore::list`] and removes with [`BlobStore::delete`].

mod claims;
mod error;
mod key;
mod options;
mod protocol;
mod signing;
mod sniff;
mod store;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use claims::CLAIMS_DIR;
pub use error::{BlobError, SignatureError};
pub use key::{KeyKind, TEMP_DIR, content_key, owner_prefix, parse_key};
pub use options::{
    BlobStoreOptions, DEFAULT_MAX_BLOB_SIZE, DEFAULT_PART_SIZE, default_allowed_types,
};
pub use protocol::BlobContent;
pub use signing::{MIN_SECRET_LEN, SigningSecret, UrlSigner, VerifiedToken};
pub use store::{Backend, BlobDigest, BlobDownload, BlobMeta, BlobStore, StoredBlob};

/// MIME type names the store can sniff.
pub mod mime {
    pub use crate::sniff::{GIF, JPEG, JSON, PDF, PNG, SVG, WEBP};
}
