//! The SQLite backend: the embedded default. One file in WAL mode; writes take the single
//! writer lock up front (`BEGIN IMMEDIATE`) so concurrent writers queue instead of failing
//! half-way, and every statement is scoped to the caller.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, SqliteConnection};
use techpack_model::{
    Collection, CollectionItem, CollectionItemInput, CollectionProgress, CollectionWithFiles,
    FileChanges, FileFilter, FilePage, FileStatus, MonitoringReport, NewCollection, NewTechFile,
    Principal, ProductStats, TechFile, TechFileVersion,
};
use uuid::Uuid;

use crate::jobs::Fence;
use crate::jobs::events::JobEventFeed;
use crate::legacy::{LegacyAnalysis, NewLegacyAnalysis};
use crate::pool::PoolSettings;
use crate::rows::{check_owner, check_status_update, completed_row};
use crate::schema::{self, Backend, MigrationInfo, SchemaReport};
use crate::sql::{self, Bind, Dialect, Query, Table};
use crate::{
    BlobReference, BlobReferences, BlobSource, LockedBlobAction, StoreError, StoreResult,
    TechFileStore,
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

const D: Dialect = Dialect::Sqlite;
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection for every write transaction. SQLite takes one writer at a time; queueing
    /// writers here, fairly and without sleeping, avoids its busy handler, which backs off in
    /// steps of up to 100 ms while another connection of this process holds the lock.
    write_pool: SqlitePool,
    /// Set on a store made by `fenced`: every write transaction first checks this lease.
    fence: Option<Fence>,
    /// The file migrations lock, beside the database (none in memory).
    migration_lock: Option<PathBuf>,
    /// The wake-ups of job event readers in this process, shared by clones.
    event_feed: JobEventFeed,
}

impl SqliteStore {
    /// Opens (creating when missing) the database file at `path`, its folder included, with
    /// the default [`PoolSettings`].
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, &PoolSettings::default()).await
    }

    /// Opens (creating when missing) the database file at `path`, its folder included. Of
    /// `settings`, the readers' pool takes its size and both pools the acquire and idle
    /// timeouts; the statement and transaction timeouts are PostgreSQL's.
    pub async fn open_with(path: &Path, settings: &PoolSettings) -> StoreResult<Self> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Config(format!(
                    "cannot create the database folder {}: {error}",
                    parent.display()
                ))
            })?;
        }
        let in_memory = path.as_os_str() == ":memory:";
        let options = if in_memory {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(StoreError::Database)?
        } else {
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
        }
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true);
        let open_error = |error: sqlx::Error| {
            StoreError::Config(format!(
                "cannot open SQLite database {}: {error}",
                path.display()
            ))
        };
        let pool = SqlitePoolOptions::new()
            // An in-memory database lives in one connection.
            .max_connections(if in_memory {
                1
            } else {
                settings.max_connections
            })
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(settings.idle_timeout)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        let write_pool = if in_memory {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(settings.acquire_timeout)
                .idle_timeout(settings.idle_timeout)
                // A commit that failed (a full disk) can leave the connection inside its
                // transaction, and every later write on it would fail too: a connection that
                // cannot begin a transaction is replaced by a fresh one.
                .before_acquire(|conn, _| {
                    Box::pin(async move {
                        // begin_with, unlike begin, refuses a connection inside a transaction
                        // (begin would open a savepoint in it).
                        match sqlx::Connection::begin_with(&mut *conn, "BEGIN").await {
                            Ok(tx) => Ok(tx.rollback().await.is_ok()),
                            Err(_) => Ok(false),
                        }
                    })
                })
                .connect_with(options)
                .await
                .map_err(open_error)?
        };
        let migration_lock = (!in_memory).then(|| {
            let mut name = path.as_os_str().to_owned();
            name.push(".migrate-lock");
            PathBuf::from(name)
        });
        Ok(Self {
            pool,
            write_pool,
            fence: None,
            migration_lock,
            event_feed: JobEventFeed::default(),
        })
    }

    /// The same store (pools) with every write transaction fenced by `fence`.
    pub(crate) fn with_fence(&self, fence: Fence) -> Self {
        Self {
            pool: self.pool.clone(),
            write_pool: self.write_pool.clone(),
            fence: Some(fence),
            migration_lock: self.migration_lock.clone(),
            event_feed: self.event_feed.clone(),
        }
    }

    /// The wake-ups of job event readers in this process.
    pub(crate) fn event_feed(&self) -> &JobEventFeed {
        &self.event_feed
    }

    /// Holds the database's migration lock until dropped: an exclusive lock on a file beside
    /// it. sqlx does not lock SQLite migrations, so processes that first use one database at
    /// the same moment would all apply its migrations (and all but one fail on a table that
    /// exists); with the lock they run one after another, and the later ones find nothing to do.
    async fn lock_migrations(&self) -> StoreResult<Option<std::fs::File>> {
        let Some(path) = self.migration_lock.clone() else {
            return Ok(None);
        };
        let locked = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(|error| StoreError::Config(format!("locking the migrations: {error}")))?;
        locked.map(Some).map_err(|error| {
            StoreError::Config(format!(
                "cannot lock the database's migrations (a file beside the database): {error}"
            ))
        })
    }

    /// The connection pool, for tests that inspect the database directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write_tx(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        self.write_tx_with(self.fence.as_ref()).await
    }

    /// A write transaction holding the single writer lock; with a fence, it first checks that
    /// the job still runs under the lease and fails with `LeaseLost` otherwise. No other
    /// writer can move the lease until this transaction ends.
    pub(crate) async fn write_tx_with(
        &self,
        fence: Option<&Fence>,
    ) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        let mut tx = self.write_pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(fence) = fence {
            crate::jobs::sqlite::check_fence(&mut tx, fence).await?;
        }
        Ok(tx)
    }

    async fn docs<T: serde::de::DeserializeOwned>(&self, query: Query) -> StoreResult<Vec<T>> {
        let mut conn = self.pool.acquire().await?;
        docs(&mut conn, query).await
    }

    async fn one<T: serde::de::DeserializeOwned>(
        &self,
        query: Query,
        entity: &'static str,
        id: impl ToString,
    ) -> StoreResult<T> {
        self.docs(query)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::not_found(entity, id))
    }
}

fn bound(query: Query) -> sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments> {
    let mut statement = sqlx::query(AssertSqlSafe(query.sql));
    for value in query.binds {
        statement = match value {
            Bind::Uuid(id) => statement.bind(id.to_string()),
            Bind::Text(text) => statement.bind(text),
            Bind::OptText(text) => statement.bind(text),
            Bind::Int(number) => statement.bind(number),
            Bind::Time(time) => statement.bind(sql::sqlite_time(time)),
        };
    }
    statement
}

async fn docs<T: serde::de::DeserializeOwned>(
    conn: &mut SqliteConnection,
    query: Query,
) -> StoreResult<Vec<T>> {
    let rows = bound(query).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|row| sql::decode_doc(&row.try_get::<String, _>(0)?))
        .collect()
}

async fn one<T: serde::de::DeserializeOwned>(
    conn: &mut SqliteConnection,
    query: Query,
    entity: &'static str,
    id: impl ToString,
) -> StoreResult<T> {
    docs(conn, query)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::not_found(entity, id))
}

async fn file_in(
    conn: &mut SqliteConnection,
    principal: Principal,
    id: Uuid,
) -> StoreResult<TechFile> {
    one(
        conn,
        sql::doc_by_id(D, principal, Table::Files, id),
        "tech file",
        id,
    )
    .await
}

fn tuples<T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>>(
    rows: &[sqlx::sqlite::SqliteRow],
) -> StoreResult<Vec<T>> {
    Ok(rows.iter().map(T::from_row).collect::<Result<_, _>>()?)
}

fn text(id: Option<Uuid>) -> Option<String> {
    id.map(|id| id.to_string())
}

/// Inserts one tech_files row; the triggers check and archive the parent of a new version.
#[allow(clippy::too_many_arguments)]
async fn insert_file(
    conn: &mut SqliteConnection,
    id: Uuid,
    lineage_id: Uuid,
    version: i32,
    parent: Option<Uuid>,
    file: &NewTechFile,
    created_by: Option<Uuid>,
    change_description: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tech_files (id, lineage_id, product_idea_id, revision_id, user_id, file_type, view_type, \
         file_category, file_url, content_sha256, content_size, mime_type, analysis_data, metadata, ai_model, \
         generation_prompt, generation_batch_id, idempotency_key, credits_used, confidence_score, quality_score, \
         status, error_message, version, parent_file_id, is_latest, created_by, change_description) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, \
         ?22, ?23, ?24, ?25, 1, ?26, ?27)",
    )
    .bind(id.to_string())
    .bind(lineage_id.to_string())
    .bind(file.product_idea_id.to_string())
    .bind(text(file.revision_id))
    .bind(file.user_id.to_string())
    .bind(file.file_type.as_str())
    .bind(&file.view_type)
    .bind(&file.file_category)
    .bind(&file.file_url)
    .bind(&file.content_sha256)
    .bind(file.content_size)
    .bind(&file.mime_type)
    .bind(file.analysis_data.to_string())
    .bind(file.metadata.to_string())
    .bind(&file.ai_model)
    .bind(&file.generation_prompt)
    .bind(text(file.generation_batch_id))
    .bind(&file.idempotency_key)
    .bind(file.credits_used)
    .bind(file.confidence_score)
    .bind(file.quality_score)
    .bind(file.status.as_str())
    .bind(&file.error_message)
    .bind(version)
    .bind(text(parent))
    .bind(text(created_by))
    .bind(change_description)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn collection_in(
    conn: &mut SqliteConnection,
    principal: Principal,
    id: Uuid,
) -> StoreResult<Collection> {
    one(
        conn,
        sql::doc_by_id(D, principal, Table::Collections, id),
        "collection",
        id,
    )
    .await
}

#[async_trait]
impl TechFileStore for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate_up(&self) -> StoreResult<Vec<i64>> {
        let _lock = self.lock_migrations().await?;
        let before = self.migration_status().await?;
        MIGRATOR.run(&self.pool).await?;
        Ok(before
            .iter()
            .filter(|m| !m.applied)
            .map(|m| m.version)
            .collect())
    }

    async fn migration_status(&self) -> StoreResult<Vec<MigrationInfo>> {
        let has_table: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_optional(&self.pool)
        .await?;
        let applied: Vec<i64> = if has_table.is_some() {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?
        } else {
            Vec::new()
        };
        Ok(migration_infos(&applied))
    }

    async fn verify_schema(&self) -> StoreResult<SchemaReport> {
        let objects: Vec<(String, String)> = sqlx::query_as("SELECT type, name FROM sqlite_master")
            .fetch_all(&self.pool)
            .await?;
        let of = |kind: &str| {
            objects
                .iter()
                .filter(|(t, _)| t == kind)
                .map(|(_, n)| n.clone())
                .collect::<Vec<_>>()
        };
        let mut report = SchemaReport::default();
        schema::missing("table", schema::TABLES, &of("table"), &mut report);
        schema::missing("index", schema::INDEXES, &of("index"), &mut report);
        schema::missing(
            "trigger",
            schema::SQLITE_TRIGGERS,
            &of("trigger"),
            &mut report,
        );
        schema::missing("view", schema::SQLITE_VIEWS, &of("view"), &mut report);
        Ok(report)
    }

    async fn migrate_down(&self) -> StoreResult<Vec<i64>> {
        let _lock = self.lock_migrations().await?;
        let applied: Vec<i64> = self
            .migration_status()
            .await?
            .iter()
            .filter(|m| m.applied)
            .map(|m| m.version)
            .collect();
        MIGRATOR.undo(&self.pool, 0).await?;
        Ok(applied.into_iter().rev().collect())
    }

    async fn create_tech_file(
        &self,
        principal: Principal,
        file: NewTechFile,
    ) -> StoreResult<TechFile> {
        file.validate()?;
        check_owner(principal, file.user_id)?;
        let mut tx = self.write_tx().await?;
        if let Some(key) = &file.idempotency_key {
            let existing: Vec<TechFile> = docs(
                &mut tx,
                sql::file_by_idempotency_key(D, principal, file.user_id, key),
            )
            .await?;
            if let Some(existing) = existing.into_iter().next() {
                return Ok(existing);
            }
        }
        let id = Uuid::now_v7();
        insert_file(&mut tx, id, id, 1, None, &file, principal.user_id(), None).await?;
        let created = file_in(&mut tx, principal, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn get_tech_file_by_id(&self, principal: Principal, id: Uuid) -> StoreResult<TechFile> {
        self.one(
            sql::doc_by_id(D, principal, Table::Files, id),
            "tech file",
            id,
        )
        .await
    }

    async fn find_by_idempotency_key(
        &self,
        principal: Principal,
        owner: Uuid,
        key: &str,
    ) -> StoreResult<Option<TechFile>> {
        Ok(self
            .docs(sql::file_by_idempotency_key(D, principal, owner, key))
            .await?
            .into_iter()
            .next())
    }

    async fn get_latest_tech_files(
        &self,
        principal: Principal,
        filter: &FileFilter,
    ) -> StoreResult<FilePage> {
        let page_size = filter.page_size()?;
        let files = self
            .docs(sql::latest_files(D, principal, filter, page_size))
            .await?;
        Ok(crate::page(files, page_size))
    }

    async fn update_tech_file_status(
        &self,
        principal: Principal,
        id: Uuid,
        status: FileStatus,
        error_message: Option<String>,
    ) -> StoreResult<TechFile> {
        check_status_update(status, &error_message)?;
        let mut tx = self.write_tx().await?;
        let mut q = Query::new(D);
        q.push("UPDATE tech_files AS t SET status = ")
            .bind(Bind::Text(status.as_str().into()))
            .push(", error_message = ")
            .bind(Bind::OptText(
                error_message.filter(|_| status == FileStatus::Failed),
            ))
            .push(" WHERE t.id = ")
            .bind(Bind::Uuid(id));
        q.scope("t", principal);
        if bound(q).execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(StoreError::not_found("tech file", id));
        }
        let file = file_in(&mut tx, principal, id).await?;
        tx.commit().await?;
        Ok(file)
    }

    async fn complete_tech_file(
        &self,
        principal: Principal,
        id: Uuid,
        changes: FileChanges,
    ) -> StoreResult<TechFile> {
        let mut done = self
            .complete_tech_files(principal, vec![(id, changes)])
            .await?;
        done.pop()
            .ok_or_else(|| StoreError::not_found("tech file", id))
    }

    async fn complete_tech_files(
        &self,
        principal: Principal,
        completions: Vec<(Uuid, FileChanges)>,
    ) -> StoreResult<Vec<TechFile>> {
        for (_, changes) in &completions {
            changes.validate()?;
        }
        let mut tx = self.write_tx().await?;
        let mut done = Vec::with_capacity(completions.len());
        for (id, changes) in &completions {
            done.push(complete_in(&mut tx, principal, *id, changes).await?);
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn archive_tech_file(&self, principal: Principal, id: Uuid) -> StoreResult<TechFile> {
        let mut tx = self.write_tx().await?;
        let mut q = Query::new(D);
        q.push("UPDATE tech_files AS t SET status = 'archived' WHERE t.id = ")
            .bind(Bind::Uuid(id));
        q.scope("t", principal);
        if bound(q).execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(StoreError::not_found("tech file", id));
        }
        let file = file_in(&mut tx, principal, id).await?;
        tx.commit().await?;
        Ok(file)
    }

    async fn create_tech_file_version(
        &self,
        principal: Principal,
        id: Uuid,
        changes: FileChanges,
    ) -> StoreResult<TechFile> {
        changes.validate()?;
        let mut tx = self.write_tx().await?;
        let parent: TechFile = file_in(&mut tx, principal, id).await?;
        if let Some(key) = &changes.idempotency_key {
            let existing: Vec<TechFile> = docs(
                &mut tx,
                sql::file_by_idempotency_key(D, principal, parent.user_id, key),
            )
            .await?;
            if let Some(existing) = existing.into_iter().next() {
                return Ok(existing);
            }
        }
        if !parent.is_latest {
            return Err(crate::superseded(&parent));
        }
        let row = changes.apply_to(&parent);
        row.validate()?;
        let new_id = Uuid::now_v7();
        insert_file(
            &mut tx,
            new_id,
            parent.lineage_id,
            parent.version + 1,
            Some(parent.id),
            &row,
            principal.user_id(),
            changes.change_description.as_deref(),
        )
        .await?;
        let file = file_in(&mut tx, principal, new_id).await?;
        tx.commit().await?;
        Ok(file)
    }

    async fn get_tech_file_versions(
        &self,
        principal: Principal,
        id: Uuid,
    ) -> StoreResult<Vec<TechFileVersion>> {
        let file = self.get_tech_file_by_id(principal, id).await?;
        self.docs(sql::lineage_versions(D, principal, file.lineage_id))
            .await
    }

    async fn get_file_history(&self, principal: Principal, id: Uuid) -> StoreResult<Vec<TechFile>> {
        let file = self.get_tech_file_by_id(principal, id).await?;
        self.docs(sql::lineage_files(D, principal, file.lineage_id))
            .await
    }

    async fn restore_tech_file_version(
        &self,
        principal: Principal,
        id: Uuid,
        version: i32,
    ) -> StoreResult<TechFile> {
        crate::restore(self, principal, id, version).await
    }

    async fn create_tech_file_collection(
        &self,
        principal: Principal,
        collection: NewCollection,
    ) -> StoreResult<Collection> {
        collection.validate()?;
        check_owner(principal, collection.user_id)?;
        let mut tx = self.write_tx().await?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO tech_file_collections (id, user_id, product_idea_id, name, description, collection_type, \
             generation_batch_id, metadata) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(id.to_string())
        .bind(collection.user_id.to_string())
        .bind(collection.product_idea_id.to_string())
        .bind(&collection.name)
        .bind(&collection.description)
        .bind(collection.collection_type.as_str())
        .bind(text(collection.generation_batch_id))
        .bind(collection.metadata.to_string())
        .execute(&mut *tx)
        .await?;
        let created = collection_in(&mut tx, principal, id).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn get_collection(&self, principal: Principal, id: Uuid) -> StoreResult<Collection> {
        self.one(
            sql::doc_by_id(D, principal, Table::Collections, id),
            "collection",
            id,
        )
        .await
    }

    async fn list_collections(
        &self,
        principal: Principal,
        product: Option<Uuid>,
    ) -> StoreResult<Vec<Collection>> {
        self.docs(sql::collections(D, principal, product)).await
    }

    async fn add_files_to_collection(
        &self,
        principal: Principal,
        collection_id: Uuid,
        items: Vec<CollectionItemInput>,
    ) -> StoreResult<Vec<CollectionItem>> {
        for item in &items {
            item.validate()?;
        }
        let mut tx = self.write_tx().await?;
        let collection = collection_in(&mut tx, principal, collection_id).await?;
        for item in &items {
            let file: TechFile = file_in(&mut tx, principal, item.tech_file_id).await?;
            if file.user_id != collection.user_id {
                return Err(StoreError::not_found("tech file", item.tech_file_id));
            }
            let order: i64 = match item.display_order {
                Some(order) => i64::from(order),
                None => {
                    sqlx::query_scalar(
                        "SELECT coalesce(max(display_order) + 1, 0) FROM tech_file_collection_items WHERE collection_id = ?1",
                    )
                    .bind(collection_id.to_string())
                    .fetch_one(&mut *tx)
                    .await?
                }
            };
            sqlx::query(
                "INSERT INTO tech_file_collection_items (id, collection_id, tech_file_id, user_id, display_order, section) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (collection_id, tech_file_id) \
                 DO UPDATE SET display_order = excluded.display_order, section = coalesce(excluded.section, section)",
            )
            .bind(Uuid::now_v7().to_string())
            .bind(collection_id.to_string())
            .bind(item.tech_file_id.to_string())
            .bind(collection.user_id.to_string())
            .bind(order)
            .bind(&item.section)
            .execute(&mut *tx)
            .await?;
        }
        let all: Vec<CollectionItem> =
            docs(&mut tx, sql::collection_items(D, principal, collection_id)).await?;
        tx.commit().await?;
        Ok(crate::items_for(all, &items))
    }

    async fn remove_files_from_collection(
        &self,
        principal: Principal,
        collection_id: Uuid,
        file_ids: Vec<Uuid>,
    ) -> StoreResult<Vec<CollectionItem>> {
        let mut tx = self.write_tx().await?;
        // Scoped to the caller: another user's collection is not found, as on PostgreSQL.
        let collection = collection_in(&mut tx, principal, collection_id).await?;
        let all: Vec<CollectionItem> =
            docs(&mut tx, sql::collection_items(D, principal, collection_id)).await?;
        let removed = crate::items_of_files(all, &file_ids);
        for item in &removed {
            // The after-delete trigger recounts the collection's credits.
            sqlx::query(
                "DELETE FROM tech_file_collection_items WHERE collection_id = ?1 AND tech_file_id = ?2 AND user_id = ?3",
            )
            .bind(collection_id.to_string())
            .bind(item.tech_file_id.to_string())
            .bind(collection.user_id.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn get_collection_with_files(
        &self,
        principal: Principal,
        id: Uuid,
    ) -> StoreResult<CollectionWithFiles> {
        let mut conn = self.pool.begin().await?;
        let collection = collection_in(&mut conn, principal, id).await?;
        let items = docs(&mut conn, sql::collection_items(D, principal, id)).await?;
        let files = docs(&mut conn, sql::collection_files(D, principal, id)).await?;
        conn.commit().await?;
        Ok(crate::join_items(collection, items, files))
    }

    async fn update_collection_progress(
        &self,
        principal: Principal,
        id: Uuid,
        progress: CollectionProgress,
    ) -> StoreResult<Collection> {
        progress.validate()?;
        let mut tx = self.write_tx().await?;
        let mut q = Query::new(D);
        q.push("UPDATE tech_file_collections AS t SET completion_percentage = ")
            .bind(Bind::Int(i64::from(progress.completion_percentage)))
            .push(", status = ")
            .bind(Bind::Text(progress.status.as_str().into()))
            .push(&format!(
                ", completed_at = CASE WHEN {} THEN coalesce(completed_at, {NOW}) ELSE NULL END",
                if crate::is_final(progress.status) {
                    "1"
                } else {
                    "0"
                }
            ));
        if let Some(steps) = progress.planned_steps {
            q.push(", planned_steps = ")
                .bind(Bind::Int(i64::from(steps)));
        }
        q.push(" WHERE t.id = ").bind(Bind::Uuid(id));
        q.scope("t", principal);
        if bound(q).execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(StoreError::not_found("collection", id));
        }
        let collection = collection_in(&mut tx, principal, id).await?;
        tx.commit().await?;
        Ok(collection)
    }

    async fn update_collection_credits(
        &self,
        principal: Principal,
        id: Uuid,
    ) -> StoreResult<Collection> {
        let mut tx = self.write_tx().await?;
        let mut q = Query::new(D);
        q.push(
            "UPDATE tech_file_collections AS t SET total_credits = coalesce((SELECT sum(f.credits_used) \
             FROM tech_file_collection_items AS i JOIN tech_files AS f ON f.id = i.tech_file_id \
             WHERE i.collection_id = t.id), 0) WHERE t.id = ",
        )
        .bind(Bind::Uuid(id));
        q.scope("t", principal);
        if bound(q).execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(StoreError::not_found("collection", id));
        }
        let collection = collection_in(&mut tx, principal, id).await?;
        tx.commit().await?;
        Ok(collection)
    }

    async fn get_batch_files(
        &self,
        principal: Principal,
        batch_id: Uuid,
    ) -> StoreResult<Vec<TechFile>> {
        self.docs(sql::batch_files(D, principal, batch_id)).await
    }

    async fn get_product_generation_stats(
        &self,
        principal: Principal,
        product_idea_id: Uuid,
    ) -> StoreResult<ProductStats> {
        let rows = bound(sql::product_stats(D, principal, product_idea_id))
            .fetch_all(&self.pool)
            .await?;
        Ok(crate::stats_from_groups(product_idea_id, tuples(&rows)?))
    }

    async fn monitoring_report(&self, principal: Principal) -> StoreResult<MonitoringReport> {
        let now = Utc::now();
        let mut conn = self.pool.begin().await?;
        let recent = bound(sql::recent_files(
            D,
            principal,
            now - chrono::Duration::hours(24),
        ))
        .fetch_all(&mut *conn)
        .await?;
        let credits = bound(sql::credits_by_product(
            D,
            principal,
            now - chrono::Duration::days(7),
        ))
        .fetch_all(&mut *conn)
        .await?;
        let completion = bound(sql::collection_completion(D, principal))
            .fetch_all(&mut *conn)
            .await?;
        conn.commit().await?;
        crate::report_from_tuples(tuples(&recent)?, tuples(&credits)?, tuples(&completion)?)
    }

    async fn write_legacy_analysis(
        &self,
        principal: Principal,
        row: NewLegacyAnalysis,
    ) -> StoreResult<LegacyAnalysis> {
        row.validate()?;
        check_owner(principal, row.user_id)?;
        let mut tx = self.write_tx().await?;
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO revision_vision_analysis (id, user_id, product_idea_id, revision_id, view_type, image_url, \
             image_sha256, analysis_data, model_used, credits_used) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(id.to_string())
        .bind(row.user_id.to_string())
        .bind(row.product_idea_id.to_string())
        .bind(row.revision_id.to_string())
        .bind(&row.view_type)
        .bind(&row.image_url)
        .bind(&row.image_sha256)
        .bind(row.analysis_data.to_string())
        .bind(&row.model_used)
        .bind(row.credits_used)
        .execute(&mut *tx)
        .await?;
        let created = one(
            &mut tx,
            sql::doc_by_id(D, principal, Table::Legacy, id),
            "legacy analysis",
            id,
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn find_legacy_analysis(
        &self,
        principal: Principal,
        revision_id: Uuid,
        view_type: &str,
        image_sha256: Option<&str>,
    ) -> StoreResult<Option<LegacyAnalysis>> {
        Ok(self
            .docs(sql::legacy_lookup(
                D,
                principal,
                revision_id,
                view_type,
                image_sha256,
            ))
            .await?
            .into_iter()
            .next())
    }

    async fn list_legacy_analyses(
        &self,
        principal: Principal,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<LegacyAnalysis>> {
        self.docs(sql::legacy_page(D, principal, after, limit))
            .await
    }

    async fn list_blob_references(
        &self,
        principal: Principal,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<BlobReferences>> {
        let mut conn = self.pool.acquire().await?;
        blob_references(
            &mut conn,
            sql::blob_references(D, principal, after, None, limit),
        )
        .await
    }

    async fn with_blob_key_locked<'a>(
        &self,
        principal: Principal,
        key: &'a str,
        action: LockedBlobAction<'a>,
    ) -> StoreResult<()> {
        // BEGIN IMMEDIATE takes the database's single write lock: no row can be written until
        // the action has run and the transaction ends.
        let mut tx = self.write_tx().await?;
        let references = blob_references(
            &mut tx,
            sql::blob_references(D, principal, None, Some(key), 1),
        )
        .await?
        .pop()
        .unwrap_or_else(|| BlobReferences::none(key));
        action(references).await;
        tx.commit().await?;
        Ok(())
    }

    async fn list_files_with_blobs(
        &self,
        principal: Principal,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<TechFile>> {
        self.docs(sql::files_with_blobs(D, principal, after, limit))
            .await
    }

    async fn list_live_blob_references(
        &self,
        principal: Principal,
        after: Option<&str>,
        keys: u32,
    ) -> StoreResult<Vec<BlobReference>> {
        self.docs(sql::live_blob_references(D, principal, after, keys))
            .await
    }

    async fn blob_references_of(
        &self,
        principal: Principal,
        source: BlobSource,
        ids: &[Uuid],
    ) -> StoreResult<Vec<BlobReference>> {
        self.docs(sql::blob_references_of(D, principal, source.as_str(), ids))
            .await
    }

    async fn database_id(&self) -> StoreResult<Uuid> {
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM techpack_instance")
            .fetch_optional(&self.pool)
            .await?;
        let id = id.ok_or_else(|| {
            StoreError::Schema(
                "the database has no techpack_instance row: run `techpack migrate`".into(),
            )
        })?;
        Uuid::parse_str(&id)
            .map_err(|error| StoreError::Corrupt(format!("techpack_instance.id {id}: {error}")))
    }
}

async fn blob_references(
    conn: &mut SqliteConnection,
    query: Query,
) -> StoreResult<Vec<BlobReferences>> {
    let rows = bound(query).fetch_all(&mut *conn).await?;
    tuples::<(String, i64, i64, Option<String>, i64)>(&rows)?
        .into_iter()
        .map(
            |(key, live_rows, archived_rows, archived_at, legacy_rows)| {
                let last_archived_at = archived_at
                    .map(|text| {
                        chrono::DateTime::parse_from_rfc3339(&text)
                            .map(|time| time.with_timezone(&Utc))
                            .map_err(|error| {
                                StoreError::Corrupt(format!("updated_at {text}: {error}"))
                            })
                    })
                    .transpose()?;
                Ok(BlobReferences {
                    key,
                    live_rows,
                    archived_rows,
                    last_archived_at,
                    legacy_rows,
                })
            },
        )
        .collect()
}

pub(crate) fn migration_infos_for(migrator: &Migrator, applied: &[i64]) -> Vec<MigrationInfo> {
    migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| MigrationInfo {
            version: m.version,
            description: m.description.to_string(),
            applied: applied.contains(&m.version),
        })
        .collect()
}

fn migration_infos(applied: &[i64]) -> Vec<MigrationInfo> {
    migration_infos_for(&MIGRATOR, applied)
}

/// Fills in one processing (or failed) file inside the caller's transaction.
async fn complete_in(
    tx: &mut SqliteConnection,
    principal: Principal,
    id: Uuid,
    changes: &FileChanges,
) -> StoreResult<TechFile> {
    let current: TechFile = file_in(&mut *tx, principal, id).await?;
    let row = completed_row(&current, changes)?;
    sqlx::query(
        "UPDATE tech_files SET view_type = ?2, file_category = ?3, file_url = ?4, content_sha256 = ?5, \
         content_size = ?6, mime_type = ?7, analysis_data = ?8, metadata = ?9, ai_model = ?10, \
         generation_prompt = ?11, generation_batch_id = ?12, idempotency_key = ?13, credits_used = ?14, \
         confidence_score = ?15, quality_score = ?16, status = ?17, error_message = ?18 WHERE id = ?1",
    )
    .bind(id.to_string())
    .bind(&row.view_type)
    .bind(&row.file_category)
    .bind(&row.file_url)
    .bind(&row.content_sha256)
    .bind(row.content_size)
    .bind(&row.mime_type)
    .bind(row.analysis_data.to_string())
    .bind(row.metadata.to_string())
    .bind(&row.ai_model)
    .bind(&row.generation_prompt)
    .bind(text(row.generation_batch_id))
    .bind(&row.idempotency_key)
    .bind(row.credits_used)
    .bind(row.confidence_score)
    .bind(row.quality_score)
    .bind(row.status.as_str())
    .bind(&row.error_message)
    .execute(&mut *tx)
    .await?;
    file_in(&mut *tx, principal, id).await
}
