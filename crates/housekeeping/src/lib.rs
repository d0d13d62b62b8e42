//! Housekeeping of techpack's stored files: storing a file the safe way round (blob first,
//! row second), cleaning up blobs nobody needs any more, and checking that every blob a row
//! needs is intact.
//!
//! # What a row needs
//!
//! The database keeps, in `blob_references`, every blob key a row needs — a file's content
//! and its other outputs (a sketch's PNG), the photos of queued and running jobs, the photos a
//! pack's collection recorded, the legacy table's images — written by triggers in the same
//! transaction as the row. Cleanup keeps exactly that set; fsck verifies exactly that set.
//!
//! # Cleanup and concurrent writers
//!
//! The race to defeat: a writer puts a blob, cleanup sees no reference to it, the writer
//! commits its row, cleanup deletes the blob — a live row now points at nothing. Three rules
//! close it:
//!
//! 1. **Age.** A blob written within the grace period is never deleted, whatever the rows
//!    say. Storing content that already exists rewrites it (see `techpack-blobs`), which
//!    refreshes its `last_modified`, so a write in flight always holds a young blob.
//! 2. **Re-check under a lock.** Right before each delete, cleanup re-reads the key's
//!    references and its `last_modified` inside
//!    [`TechFileStore::with_blob_key_locked`](techpack_store::TechFileStore::with_blob_key_locked),
//!    which keeps every writer of a reference out until the delete is done. A row committed
//!    before the lock is seen; a row committed after it waits.
//! 3. **Verify after the row.** Every writer stores through the one protocol of
//!    `techpack_blobs::BlobContent` ([`upload::store_file`] here, the orchestrator for its
//!    outputs and photos): after its row is committed it checks that the blob is still there
//!    and puts it again if not. The only way to lose it is a put that lands between cleanup's
//!    `head` and `delete` inside the lock; the row then waits for the lock, and the check
//!    after it sees the hole and fills it.
//!
//! # One blob store, one database
//!
//! Cleanup deletes what no row of *its* database needs: a blob store that another database
//! also writes to would lose that database's blobs. Every process that writes records its
//! database in the blob store (`BlobStore::claim_for_database`), and cleanup refuses to run on a store
//! that another database has claimed.

mod cleanup;
mod error;
mod fsck;
pub mod upload;

pub use cleanup::{
    CleanupFailure, CleanupItem, CleanupOptions, CleanupReason, CleanupReport,
    DEFAULT_ARCHIVED_OLDER_THAN, DEFAULT_ORPHAN_GRACE, cleanup, ensure_blob_store_is_ours,
};
pub use error::HousekeepingError;
pub use fsck::{FsckFinding, FsckProblem, FsckReport, fsck};
