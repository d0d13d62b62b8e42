//! Cleanup: deletes the blobs of files archived long ago that nothing else references, orphan
//! blobs (no row at all) past a grace period, and abandoned temporary uploads. See the crate
//! documentation for why this is safe while uploads run.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use techpack_blobs::{BlobError, BlobMeta, BlobStore, KeyKind, parse_key};
use techpack_model::Principal;
use techpack_store::{BlobReferences, TechFileStore};

use crate::HousekeepingError;

/// Default of `--archived-older-than`: 30 days.
pub const DEFAULT_ARCHIVED_OLDER_THAN: Duration = Duration::days(30);
/// Default of `--orphan-grace`: 24 hours, far longer than any upload takes from its blob to
/// its row.
pub const DEFAULT_ORPHAN_GRACE: Duration = Duration::hours(24);

/// How many reference rows one store call returns.
const REFERENCE_PAGE: u32 = 1000;

/// What cleanup does.
#[derive(Debug, Clone)]
pub struct CleanupOptions {
    /// Blobs whose rows are all archived delete once the last archive is older than this.
    pub archived_older_than: Duration,
    /// No blob written (or rewritten by a re-upload) more recently than this is deleted:
    /// orphans get this long to receive their row, and uploads in flight are never touched.
    pub orphan_grace: Duration,
    /// List what would be deleted and the bytes it would free, delete nothing.
    pub dry_run: bool,
    /// The time ages are measured from (the current time; tests move it).
    pub now: DateTime<Utc>,
}

impl Default for CleanupOptions {
    fn default() -> Self {
        Self {
            archived_older_than: DEFAULT_ARCHIVED_OLDER_THAN,
            orphan_grace: DEFAULT_ORPHAN_GRACE,
            dry_run: false,
            now: Utc::now(),
        }
    }
}

/// Why a blob goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupReason {
    /// Every row that references it was archived before the threshold.
    ArchivedFile,
    /// No row references it and it is older than the grace period.
    Orphan,
    /// An upload that never finished (a temporary key older than the grace period).
    StaleUpload,
}

impl std::fmt::Display for CleanupReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CleanupReason::ArchivedFile => "archived",
            CleanupReason::Orphan => "orphan",
            CleanupReason::StaleUpload => "stale upload",
        })
    }
}

/// A blob cleanup deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CleanupItem {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: DateTime<Utc>,
    /// Why it goes.
    pub reason: CleanupReason,
}

/// A blob cleanup meant to delete but could not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CleanupFailure {
    /// Its key.
    pub key: String,
    /// What went wrong.
    pub error: String,
}

/// What a cleanup run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// Nothing was deleted; `deleted` lists what would have been.
    pub dry_run: bool,
    /// Blobs looked at.
    pub scanned: u64,
    /// Blobs deleted (or that would be), in key order.
    pub deleted: Vec<CleanupItem>,
    /// Bytes those blobs held.
    pub bytes_freed: u64,
    /// Blobs kept because a row still needs them (a live row, a recently archived one, or a
    /// legacy analysis).
    pub kept_referenced: u64,
    /// Blobs kept because they were written within the grace period.
    pub kept_recent: u64,
    /// Candidates spared at the last moment: between the scan and the delete a row started
    /// referencing them or they were written again.
    pub spared: u64,
    /// Keys that do not follow the blob layout (never written by techpack): left alone.
    pub unknown_keys: u64,
    /// Deletes that failed; a later run retries them.
    pub failed: Vec<CleanupFailure>,
}

/// The cutoffs of one run.
#[derive(Debug, Clone, Copy)]
struct Cutoffs {
    archived: DateTime<Utc>,
    young: DateTime<Utc>,
}

/// What to do with a blob, given its references and age.
fn decide(
    meta: &BlobMeta,
    kind: &KeyKind,
    references: Option<&BlobReferences>,
    cutoffs: Cutoffs,
) -> Decision {
    if meta.last_modified >= cutoffs.young {
        return Decision::KeepRecent;
    }
    match kind {
        KeyKind::Temp { .. } => Decision::Delete(CleanupReason::StaleUpload),
        KeyKind::Content { .. } => match references {
            None => Decision::Delete(CleanupReason::Orphan),
            Some(refs) if refs.is_unreferenced() => Decision::Delete(CleanupReason::Orphan),
            Some(refs) if refs.only_archived_before(cutoffs.archived) => {
                Decision::Delete(CleanupReason::ArchivedFile)
            }
            Some(_) => Decision::KeepReferenced,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Delete(CleanupReason),
    KeepReferenced,
    KeepRecent,
}

/// Runs cleanup over every owner's blobs (acting as the service role). Per-blob failures are
/// reported and do not stop the run; a failure to read the store or list the blobs does.
pub async fn cleanup(
    store: &dyn TechFileStore,
    blobs: &BlobStore,
    options: &CleanupOptions,
) -> Result<CleanupReport, HousekeepingError> {
    if options.archived_older_than < Duration::zero() || options.orphan_grace < Duration::zero() {
        return Err(HousekeepingError::InvalidOption(
            "cleanup ages must not be negative".into(),
        ));
    }
    let (Some(archived), Some(young)) = (
        options.now.checked_sub_signed(options.archived_older_than),
        options.now.checked_sub_signed(options.orphan_grace),
    ) else {
        return Err(HousekeepingError::InvalidOption(
            "cleanup ages reach before the start of the calendar; give a shorter age".into(),
        ));
    };
    let cutoffs = Cutoffs { archived, young };
    ensure_blob_store_is_ours(store, blobs).await?;
    // References first, blobs second: a blob stored after the references were read is young
    // (kept by age), and a row added after is caught by the re-check under the lock.
    let references = load_references(store).await?;
    let mut listed: Vec<BlobMeta> = blobs.list("")?.try_collect().await?;
    listed.sort_by(|a, b| a.key.cmp(&b.key));

    let mut report = CleanupReport {
        dry_run: options.dry_run,
        ..CleanupReport::default()
    };
    for meta in listed {
        report.scanned += 1;
        let Some(kind) = parse_key(&meta.key) else {
            report.unknown_keys += 1;
            continue;
        };
        let reason = match decide(&meta, &kind, references.get(&meta.key), cutoffs) {
            Decision::KeepRecent => {
                report.kept_recent += 1;
                continue;
            }
            Decision::KeepReferenced => {
                report.kept_referenced += 1;
                continue;
            }
            Decision::Delete(reason) => reason,
        };
        let item = CleanupItem {
            key: meta.key.clone(),
            size: meta.size,
            last_modified: meta.last_modified,
            reason,
        };
        if options.dry_run {
            report.bytes_freed += item.size;
            report.deleted.push(item);
            continue;
        }
        let outcome = match kind {
            // No row ever records a temporary key, so there is nothing to re-check but its age.
            KeyKind::Temp { .. } => delete_if_still_old(blobs, &meta.key, cutoffs.young).await,
            KeyKind::Content { .. } => {
                delete_content_locked(store, blobs, &meta.key, &kind, cutoffs).await
            }
        };
        match outcome {
            Ok(Some(size)) => {
                report.bytes_freed += size;
                report.deleted.push(CleanupItem { size, ..item });
            }
            Ok(None) => report.spared += 1,
            Err(error) => report.failed.push(CleanupFailure {
                key: meta.key.clone(),
                error,
            }),
        }
    }
    tracing::info!(
        deleted = report.deleted.len(),
        bytes = report.bytes_freed,
        dry_run = report.dry_run,
        "cleanup finished"
    );
    Ok(report)
}

/// Refuses a blob store that another database also writes to (see the crate documentation),
/// claiming an unclaimed one for this database first.
pub async fn ensure_blob_store_is_ours(
    store: &dyn TechFileStore,
    blobs: &BlobStore,
) -> Result<(), HousekeepingError> {
    let ours = store.database_id().await?;
    blobs.claim_for_database(ours).await?;
    let others: Vec<_> = blobs
        .claiming_databases()
        .await?
        .into_iter()
        .filter(|id| *id != ours)
        .collect();
    if others.is_empty() {
        Ok(())
    } else {
        Err(HousekeepingError::SharedBlobStore { ours, others })
    }
}

async fn load_references(
    store: &dyn TechFileStore,
) -> Result<HashMap<String, BlobReferences>, HousekeepingError> {
    let mut all = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_blob_references(Principal::Service, after.as_deref(), REFERENCE_PAGE)
            .await?;
        let full = page.len() == REFERENCE_PAGE as usize;
        after = page.last().map(|last| last.key.clone());
        all.extend(page.into_iter().map(|refs| (refs.key.clone(), refs)));
        if !full {
            return Ok(all);
        }
    }
}

/// Deletes `key` if it is still older than `young`; returns the bytes freed, `None` if spared.
async fn delete_if_still_old(
    blobs: &BlobStore,
    key: &str,
    young: DateTime<Utc>,
) -> Result<Option<u64>, String> {
    let meta = match blobs.head(key).await {
        Ok(meta) => meta,
        // Gone already (another cleanup, or the upload finished and moved it): nothing to free.
        Err(BlobError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    if meta.last_modified >= young {
        return Ok(None);
    }
    blobs.delete(key).await.map_err(|error| error.to_string())?;
    Ok(Some(meta.size))
}

/// Re-decides and deletes a content blob while the store keeps writers out.
async fn delete_content_locked(
    store: &dyn TechFileStore,
    blobs: &BlobStore,
    key: &str,
    kind: &KeyKind,
    cutoffs: Cutoffs,
) -> Result<Option<u64>, String> {
    let outcome: Mutex<Result<Option<u64>, String>> = Mutex::new(Ok(None));
    let slot = &outcome;
    let locked = store
        .with_blob_key_locked(
            Principal::Service,
            key,
            Box::new(move |references: BlobReferences| {
                Box::pin(async move {
                    let result = match blobs.head(key).await {
                        Ok(meta) => match decide(&meta, kind, Some(&references), cutoffs) {
                            Decision::Delete(_) => blobs
                                .delete(key)
                                .await
                                .map(|()| Some(meta.size))
                                .map_err(|e| e.to_string()),
                            Decision::KeepRecent | Decision::KeepReferenced => Ok(None),
                        },
                        Err(BlobError::NotFound { .. }) => Ok(None),
                        Err(error) => Err(error.to_string()),
                    };
                    *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = result;
                })
            }),
        )
        .await;
    if let Err(error) = locked {
        return Err(error.to_string());
    }
    outcome
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn meta(age: Duration, now: DateTime<Utc>) -> BlobMeta {
        BlobMeta {
            key: "k".into(),
            size: 1,
            last_modified: now - age,
            e_tag: None,
        }
    }

    #[test]
    fn decisions_follow_age_and_references() {
        let now = Utc::now();
        let cutoffs = Cutoffs {
            archived: now - Duration::days(30),
            young: now - Duration::hours(24),
        };
        let content = KeyKind::Content {
            owner: Uuid::nil(),
            sha256: "a".repeat(64),
        };
        let temp = KeyKind::Temp { owner: Uuid::nil() };
        let old = meta(Duration::days(2), now);
        let young = meta(Duration::hours(1), now);
        let mut refs = BlobReferences::none("k");
        assert_eq!(
            decide(&old, &content, None, cutoffs),
            Decision::Delete(CleanupReason::Orphan)
        );
        assert_eq!(
            decide(&young, &content, None, cutoffs),
            Decision::KeepRecent
        );
        assert_eq!(
            decide(&old, &temp, None, cutoffs),
            Decision::Delete(CleanupReason::StaleUpload)
        );
        assert_eq!(decide(&young, &temp, None, cutoffs), Decision::KeepRecent);
        refs.archived_rows = 1;
        refs.last_archived_at = Some(now - Duration::days(31));
        assert_eq!(
            decide(&old, &content, Some(&refs), cutoffs),
            Decision::Delete(CleanupReason::ArchivedFile)
        );
        refs.last_archived_at = Some(now - Duration::days(29));
        assert_eq!(
            decide(&old, &content, Some(&refs), cutoffs),
            Decision::KeepReferenced
        );
        refs.last_archived_at = Some(now - Duration::days(31));
        refs.live_rows = 1;
        assert_eq!(
            decide(&old, &content, Some(&refs), cutoffs),
            Decision::KeepReferenced
        );
        refs.live_rows = 0;
        refs.legacy_rows = 1;
        assert_eq!(
            decide(&old, &content, Some(&refs), cutoffs),
            Decision::KeepReferenced
        );
    }
}
