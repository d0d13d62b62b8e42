//! The metadata store of techpack: tech files and their versions, collections, the legacy
//! analysis cache, statistics and monitoring, on PostgreSQL or SQLite behind one trait,
//! [`TechFileStore`]. Every call takes the acting [`Principal`]: on PostgreSQL each call runs in
//! one transaction under role `authenticated` with the caller's JWT claims, so row level
//! security enforces isolation; on SQLite every statement is scoped to the caller.

mod error;
mod jobs;
mod legacy;
mod pool;
mod postgres;
mod rows;
mod schema;
mod sql;
mod sqlite;
#[cfg(feature = "test-support")]
pub mod test_support;
mod url;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use techpack_model::{
    Collection, CollectionItem, CollectionItemInput, CollectionProgress, CollectionWithFiles,
    FileChanges, FileFilter, FilePage, FileStatus, MonitoringReport, NewCollection, NewTechFile,
    Principal, ProductStats, TechFile, TechFileVersion,
};
use uuid::Uuid;

pub use error::{StoreError, StoreResult};
pub use jobs::{JOB_EVENTS_CHANNEL, JOBS_CHANNEL, JobEventWaker, JobStore};
pub use legacy::{LegacyAnalysis, NewLegacyAnalysis};
pub use pool::PoolSettings;
pub use postgres::PostgresStore;
pub use schema::{Backend, MigrationInfo, SchemaReport};
pub use sqlite::SqliteStore;
pub use url::DatabaseTarget;

/// The store of tech files, versions and collections, and (through [`JobStore`]) of durable
/// generation jobs. Both backends pass one conformance suite.
#[async_trait]
pub trait TechFileStore: JobStore + Send + Sync + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Applies every pending migration; applying twice is a no-op. Returns the versions applied.
    async fn migrate_up(&self) -> StoreResult<Vec<i64>>;
    /// Every known migration and whether it is applied.
    async fn migration_status(&self) -> StoreResult<Vec<MigrationInfo>>;
    /// Checks that every table, index, trigger, function (and on PostgreSQL, policy) exists.
    async fn verify_schema(&self) -> StoreResult<SchemaReport>;
    /// Reverts every migration: drops techpack's objects (and only those).
    async fn migrate_down(&self) -> StoreResult<Vec<i64>>;

    /// Creates the first version of a file. With an idempotency key that the owner already
    /// used, returns the existing row and writes nothing.
    async fn create_tech_file(
        &self,
        principal: Principal,
        file: NewTechFile,
    ) -> StoreResult<TechFile>;
    /// One version by id.
    async fn get_tech_file_by_id(&self, principal: Principal, id: Uuid) -> StoreResult<TechFile>;
    /// A file by its owner's idempotency key.
    async fn find_by_idempotency_key(
        &self,
        principal: Principal,
        owner: Uuid,
        key: &str,
    ) -> StoreResult<Option<TechFile>>;
    /// The latest version of each file, newest first, filtered and paged by keyset.
    async fn get_latest_tech_files(
        &self,
        principal: Principal,
        filter: &FileFilter,
    ) -> StoreResult<FilePage>;
    /// Sets the status in place (processing, completed, failed), with the error for a failure.
    async fn update_tech_file_status(
        &self,
        principal: Principal,
        id: Uuid,
        status: FileStatus,
        error_message: Option<String>,
    ) -> StoreResult<TechFile>;
    /// Fills in a processing (or failed) file's outputs in place, e.g. when its generation
    /// step finishes. A completed file is changed by a new version instead: conflict.
    async fn complete_tech_file(
        &self,
        principal: Principal,
        id: Uuid,
        changes: FileChanges,
    ) -> StoreResult<TechFile>;
    /// Completes several files in one transaction, all or none, returned in the order given.
    /// For a caller that finishes many steps at once: one commit (and on a single-writer
    /// database, one turn at the lock) instead of one per file.
    async fn complete_tech_files(
        &self,
        principal: Principal,
        completions: Vec<(Uuid, FileChanges)>,
    ) -> StoreResult<Vec<TechFile>>;
    /// Soft-deletes a file: status `archived`, history kept.
    async fn archive_tech_file(&self, principal: Principal, id: Uuid) -> StoreResult<TechFile>;
    /// Creates the next version of the file whose latest version is `id`; the superseded
    /// version is archived into `tech_file_versions` by the database. Versioning a superseded
    /// version is a conflict.
    ///
    /// Fields the changes leave unset are copied from the superseded version, except credits
    /// (0) and the idempotency key — and except the outputs of a version whose resulting
    /// status is `processing`: it is about to be generated, so file_url, content_sha256,
    /// content_size, mime_type, ai_model, generation_prompt, confidence_score, quality_score
    /// and error_message start empty and analysis_data `{}`, and a generation that fails
    /// leaves no trace of the parent's output on it. Lineage, product, revision, owner,
    /// type, view, category, metadata and generation batch are always inherited. See
    /// [`FileChanges::apply_to`].
    async fn create_tech_file_version(
        &self,
        principal: Principal,
        id: Uuid,
        changes: FileChanges,
    ) -> StoreResult<TechFile>;
    /// The archived snapshots of the file's superseded versions, oldest first.
    async fn get_tech_file_versions(
        &self,
        principal: Principal,
        id: Uuid,
    ) -> StoreResult<Vec<TechFileVersion>>;
    /// Every version row of the file's lineage, oldest first.
    async fn get_file_history(&self, principal: Principal, id: Uuid) -> StoreResult<Vec<TechFile>>;
    /// Makes a new latest version whose content is version `version`'s snapshot.
    async fn restore_tech_file_version(
        &self,
        principal: Principal,
        id: Uuid,
        version: i32,
    ) -> StoreResult<TechFile>;

    /// Creates a collection.
    async fn create_tech_file_collection(
        &self,
        principal: Principal,
        collection: NewCollection,
    ) -> StoreResult<Collection>;
    /// One collection.
    async fn get_collection(&self, principal: Principal, id: Uuid) -> StoreResult<Collection>;
    /// Collections, newest first, optionally of one product.
    async fn list_collections(
        &self,
        principal: Principal,
        product: Option<Uuid>,
    ) -> StoreResult<Vec<Collection>>;
    /// Adds files (or moves them, when already in) to a collection, in one transaction.
    async fn add_files_to_collection(
        &self,
        principal: Principal,
        collection_id: Uuid,
        items: Vec<CollectionItemInput>,
    ) -> StoreResult<Vec<CollectionItem>>;
    /// Takes files out of a collection, in one transaction; the files themselves stay. The
    /// database recounts the collection's credits. A file that is not in the collection is
    /// skipped, not an error, so removing twice is harmless; another user's collection is
    /// not found. Returns the items removed, in the order their files were given.
    async fn remove_files_from_collection(
        &self,
        principal: Principal,
        collection_id: Uuid,
        file_ids: Vec<Uuid>,
    ) -> StoreResult<Vec<CollectionItem>>;
    /// A collection with its files in display order.
    async fn get_collection_with_files(
        &self,
        principal: Principal,
        id: Uuid,
    ) -> StoreResult<CollectionWithFiles>;
    /// Sets progress and status; a final status stamps `completed_at`.
    async fn update_collection_progress(
        &self,
        principal: Principal,
        id: Uuid,
        progress: CollectionProgress,
    ) -> StoreResult<Collection>;
    /// Recounts the collection's credits from its files (the database also keeps them current).
    async fn update_collection_credits(
        &self,
        principal: Principal,
        id: Uuid,
    ) -> StoreResult<Collection>;

    /// The files of a generation run, in creation order.
    async fn get_batch_files(
        &self,
        principal: Principal,
        batch_id: Uuid,
    ) -> StoreResult<Vec<TechFile>>;
    /// Files, credits and counts of a product.
    async fn get_product_generation_stats(
        &self,
        principal: Principal,
        product_idea_id: Uuid,
    ) -> StoreResult<ProductStats>;
    /// The specification's three monitoring queries.
    async fn monitoring_report(&self, principal: Principal) -> StoreResult<MonitoringReport>;

    /// Writes a row of the legacy `revision_vision_analysis` table.
    async fn write_legacy_analysis(
        &self,
        principal: Principal,
        row: NewLegacyAnalysis,
    ) -> StoreResult<LegacyAnalysis>;
    /// The newest legacy analysis of a revision's view, optionally of one image hash.
    async fn find_legacy_analysis(
        &self,
        principal: Principal,
        revision_id: Uuid,
        view_type: &str,
        image_sha256: Option<&str>,
    ) -> StoreResult<Option<LegacyAnalysis>>;
    /// Legacy rows in creation order, after the given id (for paging a backfill).
    async fn list_legacy_analyses(
        &self,
        principal: Principal,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<LegacyAnalysis>>;

    /// Every blob key that rows refer to — files' content and other outputs of any status, the
    /// photos of jobs and packs' collections, the legacy `revision_vision_analysis.image_url` —
    /// with how they refer to it, in key order after `after`, at most `limit` keys (from the
    /// `blob_references` table the database keeps with the rows). Cleanup pages through this to
    /// decide what is unreferenced.
    async fn list_blob_references(
        &self,
        principal: Principal,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<BlobReferences>>;
    /// Reads the references of `key` and runs `action` with them while no reference can be
    /// added or changed, so no row that needs a blob can be written (PostgreSQL: a `SHARE`
    /// lock on `blob_references` for one transaction, which every such write's trigger waits
    /// for; SQLite: the write lock of `BEGIN IMMEDIATE`). Cleanup
    /// deletes a blob inside `action`, so a row that points at the key either committed before
    /// (and `action` sees it) or commits after the delete (and its writer can see the blob is
    /// gone and store it again). Keep `action` short: writers wait for it.
    async fn with_blob_key_locked<'a>(
        &self,
        principal: Principal,
        key: &'a str,
        action: LockedBlobAction<'a>,
    ) -> StoreResult<()>;
    /// The non-archived rows that point at a blob (`file_url` set), any version, in id order
    /// after `after`, at most `limit`.
    async fn list_files_with_blobs(
        &self,
        principal: Principal,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<TechFile>>;

    /// The live references of the first `keys` blob keys after `after`, in key order, each key
    /// with every row that needs it: what `fsck` verifies. The same set cleanup keeps.
    async fn list_live_blob_references(
        &self,
        principal: Principal,
        after: Option<&str>,
        keys: u32,
    ) -> StoreResult<Vec<BlobReference>>;

    /// The blob references of some rows of one source (e.g. a pack's files, for an export),
    /// in (row, name) order.
    async fn blob_references_of(
        &self,
        principal: Principal,
        source: BlobSource,
        ids: &[Uuid],
    ) -> StoreResult<Vec<BlobReference>>;

    /// This database's identity (made by its first migration): a blob store records the
    /// databases that write to it, and cleanup refuses to delete from one another database
    /// also uses.
    async fn database_id(&self) -> StoreResult<Uuid>;
}

/// What kind of row needs a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobSource {
    /// A `tech_files` row: its content (`file_url`) and its other outputs (a sketch's PNG).
    TechFile,
    /// A queued or running job: the photos it will read.
    Job,
    /// A pack's collection: the photos its request recorded (for `--retry-failed`).
    Collection,
    /// A legacy `revision_vision_analysis` row: its image.
    Legacy,
}

impl BlobSource {
    /// The name stored in `blob_references.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            BlobSource::TechFile => "tech_file",
            BlobSource::Job => "job",
            BlobSource::Collection => "collection",
            BlobSource::Legacy => "legacy",
        }
    }
}

impl std::fmt::Display for BlobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlobSource::TechFile => "tech file",
            BlobSource::Job => "job",
            BlobSource::Collection => "collection",
            BlobSource::Legacy => "legacy analysis",
        })
    }
}

/// One blob a row needs, as the database keeps it (in the same transaction as the row).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlobReference {
    /// What kind of row needs it.
    pub source: BlobSource,
    /// The row.
    pub source_id: Uuid,
    /// What the blob is to the row: `content`, `png`, `photo:front`, `image` …
    pub name: String,
    /// The row's owner.
    pub user_id: Uuid,
    /// The blob's key.
    pub blob_key: String,
    /// Its SHA-256, when the row recorded one.
    pub sha256: Option<String>,
    /// Its size in bytes, when the row recorded one.
    pub size: Option<i64>,
    /// Whether the row needs it now (false for an archived file, a job that ended).
    pub live: bool,
    /// When the reference last started or stopped being live.
    pub changed_at: DateTime<Utc>,
}

/// How the rows of the store refer to one blob key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlobReferences {
    /// The blob key (`file_url` / `image_url`).
    pub key: String,
    /// Rows that need it now: files that are not archived, queued or running jobs, packs'
    /// collections.
    pub live_rows: i64,
    /// Rows that named it and no longer need it: archived files, jobs that ended.
    pub archived_rows: i64,
    /// When the last of those stopped needing it.
    pub last_archived_at: Option<DateTime<Utc>>,
    /// Legacy `revision_vision_analysis` rows whose `image_url` is the key.
    pub legacy_rows: i64,
}

impl BlobReferences {
    /// A key no row refers to.
    pub fn none(key: &str) -> Self {
        Self {
            key: key.to_owned(),
            live_rows: 0,
            archived_rows: 0,
            last_archived_at: None,
            legacy_rows: 0,
        }
    }

    /// No row refers to the key at all.
    pub fn is_unreferenced(&self) -> bool {
        self.live_rows == 0 && self.archived_rows == 0 && self.legacy_rows == 0
    }

    /// Only archived rows refer to the key, and all were archived before `cutoff`.
    pub fn only_archived_before(&self, cutoff: DateTime<Utc>) -> bool {
        self.live_rows == 0
            && self.legacy_rows == 0
            && self.archived_rows > 0
            && self
                .last_archived_at
                .is_some_and(|archived| archived < cutoff)
    }
}

/// The action [`TechFileStore::with_blob_key_locked`] runs with the key's references.
pub type LockedBlobAction<'a> =
    Box<dyn FnOnce(BlobReferences) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> + Send + 'a>;

/// Opens the store a URL names (see [`DatabaseTarget`]) with the default [`PoolSettings`].
/// Does not migrate.
pub async fn open_store(url: &str) -> StoreResult<Arc<dyn TechFileStore>> {
    open_store_with(url, &PoolSettings::default()).await
}

/// Opens the store a URL names (see [`DatabaseTarget`]) with `pool`'s sizes and timeouts.
/// Does not migrate.
pub async fn open_store_with(
    url: &str,
    pool: &PoolSettings,
) -> StoreResult<Arc<dyn TechFileStore>> {
    match DatabaseTarget::parse(url)? {
        DatabaseTarget::Sqlite(path) => Ok(Arc::new(SqliteStore::open_with(&path, pool).await?)),
        DatabaseTarget::Postgres(url) => {
            Ok(Arc::new(PostgresStore::connect_with(&url, pool).await?))
        }
    }
}

/// Splits the extra row fetched past the page into the next cursor.
fn page(mut files: Vec<TechFile>, page_size: u32) -> FilePage {
    let next = if files.len() > page_size as usize {
        files.truncate(page_size as usize);
        files.last().map(|last| techpack_model::FileCursor {
            created_at: last.created_at,
            id: last.id,
        })
    } else {
        None
    };
    FilePage { files, next }
}

fn superseded(file: &TechFile) -> StoreError {
    StoreError::Conflict(format!(
        "tech file {} is version {} and no longer the latest version of its file: read the latest version and create the new version from it",
        file.id, file.version
    ))
}

fn is_final(status: techpack_model::CollectionStatus) -> bool {
    use techpack_model::CollectionStatus::*;
    matches!(status, Completed | Partial | Failed)
}

/// Restores version `version` of `id`'s file as a new latest version, through the backend's
/// own versioning (so the database archives and checks as for any other new version).
async fn restore<S: TechFileStore + ?Sized>(
    store: &S,
    principal: Principal,
    id: Uuid,
    version: i32,
) -> StoreResult<TechFile> {
    let history = store.get_file_history(principal, id).await?;
    let latest = history
        .iter()
        .find(|file| file.is_latest)
        .ok_or_else(|| StoreError::Corrupt(format!("the file of {id} has no latest version")))?;
    if version == latest.version {
        return Err(techpack_model::ValidationError::new(
            "version",
            format!("version {version} is already the latest version"),
        )
        .into());
    }
    let snapshots = store.get_tech_file_versions(principal, id).await?;
    let snapshot = snapshots
        .iter()
        .find(|archived| archived.version == version)
        .ok_or_else(|| StoreError::not_found("version", format!("{version} of tech file {id}")))?;
    let content: TechFile = serde_json::from_value(snapshot.snapshot.clone())
        .map_err(|error| StoreError::Corrupt(format!("snapshot of version {version}: {error}")))?;
    store
        .create_tech_file_version(principal, latest.id, rows::restore_changes(&content))
        .await
}

/// The items of `all` whose files are in `ids`, in the order of `ids` (each once).
fn items_of_files(all: Vec<CollectionItem>, ids: &[Uuid]) -> Vec<CollectionItem> {
    let mut seen = std::collections::HashSet::new();
    ids.iter()
        .filter(|id| seen.insert(**id))
        .filter_map(|id| all.iter().find(|item| item.tech_file_id == *id).cloned())
        .collect()
}

/// The items of `all` that the call added, in the order given.
fn items_for(all: Vec<CollectionItem>, added: &[CollectionItemInput]) -> Vec<CollectionItem> {
    added
        .iter()
        .filter_map(|input| {
            all.iter()
                .find(|item| item.tech_file_id == input.tech_file_id)
                .cloned()
        })
        .collect()
}

fn join_items(
    collection: Collection,
    items: Vec<CollectionItem>,
    files: Vec<TechFile>,
) -> CollectionWithFiles {
    let items = items
        .into_iter()
        .filter_map(|item| {
            let file = files
                .iter()
                .find(|file| file.id == item.tech_file_id)?
                .clone();
            Some((item, file))
        })
        .collect();
    CollectionWithFiles { collection, items }
}

type StatsGroup = (String, String, i64, i64, i64);

fn stats_from_groups(product_idea_id: Uuid, groups: Vec<StatsGroup>) -> ProductStats {
    let mut stats = ProductStats {
        product_idea_id,
        ..ProductStats::default()
    };
    for (file_type, status, files, credits, latest) in groups {
        stats.total_files += files;
        stats.latest_files += latest;
        stats.total_credits_used += credits;
        *stats.files_by_type.entry(file_type).or_default() += files;
        *stats.files_by_status.entry(status).or_default() += files;
    }
    stats
}

fn report_from_tuples(
    recent: Vec<(String, String, i64)>,
    credits: Vec<(String, i64, i64)>,
    completion: Vec<(String, f64, i64)>,
) -> StoreResult<MonitoringReport> {
    use techpack_model::{CollectionCompletionRow, ProductCreditsRow, RecentFilesRow};
    Ok(MonitoringReport {
        recent_files: recent
            .into_iter()
            .map(|(file_type, status, count)| RecentFilesRow {
                file_type,
                status,
                count,
            })
            .collect(),
        credits_by_product: credits
            .into_iter()
            .map(|(product, total_credits, file_count)| {
                Ok(ProductCreditsRow {
                    product_idea_id: Uuid::parse_str(&product).map_err(|error| {
                        StoreError::Corrupt(format!("product id {product}: {error}"))
                    })?,
                    total_credits,
                    file_count,
                })
            })
            .collect::<StoreResult<_>>()?,
        collection_completion: completion
            .into_iter()
            .map(|(status, avg_completion, count)| CollectionCompletionRow {
                status,
                avg_completion,
                count,
            })
            .collect(),
    })
}

/// `files` arranged in the order their ids have in `ids`.
fn in_order(ids: &[Uuid], mut files: Vec<TechFile>) -> Vec<TechFile> {
    files.sort_by_key(|file| ids.iter().position(|id| *id == file.id));
    files
}
