//! Verification: every blob a row needs now (the live references the database keeps: files'
//! content and sketch PNGs, queued jobs' photos, packs' recorded photos, legacy images) exists
//! and has the size and SHA-256 the row recorded. Blobs are re-read as streams, so checking a
//! large file needs no more memory than a small one.

use std::collections::HashMap;

use serde::Serialize;
use techpack_blobs::{BlobDigest, BlobError, BlobStore, KeyKind, parse_key};
use techpack_model::Principal;
use techpack_store::{BlobSource, TechFileStore};
use uuid::Uuid;

use crate::HousekeepingError;

/// How many blob keys one store call returns the references of.
const KEY_PAGE: u32 = 500;

/// What is wrong with a row's blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FsckProblem {
    /// No blob under the row's key.
    Missing,
    /// The blob's size is not the recorded one.
    WrongSize {
        /// What the row recorded.
        recorded: i64,
        /// What the blob holds.
        actual: u64,
    },
    /// The blob's SHA-256 is neither the recorded one nor the one its content key names.
    WrongHash {
        /// What the row recorded (or, when it recorded none, what the key names).
        recorded: String,
        /// What the blob hashes to.
        actual: String,
    },
    /// The blob could not be read.
    Unreadable {
        /// Why.
        error: String,
    },
}

impl std::fmt::Display for FsckProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsckProblem::Missing => f.write_str("missing"),
            FsckProblem::WrongSize { recorded, actual } => {
                write!(f, "wrong size: recorded {recorded}, found {actual}")
            }
            FsckProblem::WrongHash { recorded, actual } => {
                write!(f, "wrong hash: recorded {recorded}, found {actual}")
            }
            FsckProblem::Unreadable { error } => write!(f, "unreadable: {error}"),
        }
    }
}

/// A row whose blob is not as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsckFinding {
    /// What kind of row needs the blob.
    pub source: BlobSource,
    /// The row that needs it: a tech file's id, or the job's, collection's or legacy row's
    /// (see `source`).
    pub file_id: Uuid,
    /// What the blob is to the row (`content`, `png`, `photo:front` …).
    pub name: String,
    /// Its owner.
    pub user_id: Uuid,
    /// The blob key it records.
    pub key: String,
    /// What is wrong.
    pub problem: FsckProblem,
}

/// What fsck found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FsckReport {
    /// References checked: every blob a row needs now (archived files and ended jobs no longer
    /// need theirs, which cleanup may have removed on purpose).
    pub rows_checked: u64,
    /// Distinct blobs read (rows sharing content share a blob).
    pub blobs_checked: u64,
    /// Bytes read and hashed.
    pub bytes_read: u64,
    /// Every mismatch, in key order.
    pub findings: Vec<FsckFinding>,
}

impl FsckReport {
    /// Every row's blob was as recorded.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Checks every owner's references (acting as the service role). Per-blob problems go into
/// the report; a failure to read the store stops the run.
pub async fn fsck(
    store: &dyn TechFileStore,
    blobs: &BlobStore,
) -> Result<FsckReport, HousekeepingError> {
    let mut report = FsckReport::default();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_live_blob_references(Principal::Service, after.as_deref(), KEY_PAGE)
            .await?;
        let Some(last) = page.last() else {
            return Ok(report);
        };
        after = Some(last.blob_key.clone());
        // The page holds every reference of each of its keys: one read per key.
        let mut digests: HashMap<String, Result<BlobDigest, FsckProblem>> = HashMap::new();
        for reference in page {
            report.rows_checked += 1;
            let key = reference.blob_key.clone();
            if !digests.contains_key(&key) {
                let digest = match blobs.verify_blob(&key).await {
                    Ok(digest) => {
                        report.blobs_checked += 1;
                        report.bytes_read += digest.size;
                        Ok(digest)
                    }
                    Err(BlobError::NotFound { .. }) => Err(FsckProblem::Missing),
                    Err(error) => Err(FsckProblem::Unreadable {
                        error: error.to_string(),
                    }),
                };
                digests.insert(key.clone(), digest);
            }
            let problem = match &digests[&key] {
                Err(problem) => Some(problem.clone()),
                Ok(digest) => compare(&key, reference.size, reference.sha256.as_deref(), digest),
            };
            if let Some(problem) = problem {
                report.findings.push(FsckFinding {
                    source: reference.source,
                    file_id: reference.source_id,
                    name: reference.name,
                    user_id: reference.user_id,
                    key,
                    problem,
                });
            }
        }
    }
}

/// The first way the blob differs from the row: size, then hash (the recorded one, or the one
/// a content key names when the row recorded none).
fn compare(
    key: &str,
    size: Option<i64>,
    sha256: Option<&str>,
    digest: &BlobDigest,
) -> Option<FsckProblem> {
    if let Some(recorded) = size
        && u64::try_from(recorded).ok() != Some(digest.size)
    {
        return Some(FsckProblem::WrongSize {
            recorded,
            actual: digest.size,
        });
    }
    let expected = sha256.map(str::to_owned).or_else(|| match parse_key(key) {
        Some(KeyKind::Content { sha256, .. }) => Some(sha256),
        _ => None,
    });
    match expected {
        Some(recorded) if !recorded.eq_ignore_ascii_case(&digest.sha256) => {
            Some(FsckProblem::WrongHash {
                recorded,
                actual: digest.sha256.clone(),
            })
        }
        _ => None,
    }
}
