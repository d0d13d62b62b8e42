//! Housekeeping of techpack's stored files: storing a file the safe way round (blob first,
//! row second), cleaning up blobs nobody needs any more, and checking that every row's blob
//! is intact.
//!
//! # Cleanup and concurrent uploads
//!
//! The race to defeat: an upload puts a blob, cleanup sees no row for it, the upload inserts
//! its row, cleanup deletes the blob — a live row now points at nothing. Three rules close it:
//!
//! 1. **Age.** A blob written within the grace period is never deleted, whatever the rows
//!    say. Storing content that already exists rewrites it (see `techpack-blobs`), which
//!    refreshes its `last_modified`, so an upload in flight always holds a young blob.
//! 2. **Re-check under a lock.** Right before each delete, cleanup re-reads the key's
//!    references and its `last_modified` inside
//!    [`TechFileStore::with_blob_key_locked`](techpack_store::TechFileStore::with_blob_key_locked),
//!    which keeps every writer of `tech_files` and `revision_vision_analysis` out until the
//!    delete is done. A row committed before the lock is seen; a row committed after it waits.
//! 3. **Verify after the row.** [`upload::store_file`] checks, after its row is committed,
//!    that the blob is still there, and puts it again if not. The only way to lose it is a
//!    put that lands between cleanup's `head` and `delete` inside the lock; the upload's row
//!    insert then waits for the lock, and the check after it sees the hole and fills it.
//!
//! What remains: a writer that does not use [`upload::store_file`] (puts and inserts itself,
//! without the check after the row) can lose its blob if its put lands in that
//! head-to-delete instant. Such writers should call [`upload::ensure_blob`] after inserting.

mod cleanup;
mod error;
mod fsck;
pub mod upload;

pub use cleanup::{
    CleanupFailure, CleanupItem, CleanupOptions, CleanupReason, CleanupReport,
    DEFAULT_ARCHIVED_OLDER_THAN, DEFAULT_ORPHAN_GRACE, cleanup,
};
pub use error::HousekeepingError;
pub use fsck::{FsckFinding, FsckProblem, FsckReport, fsck};
