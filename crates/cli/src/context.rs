//! Global options and what every command shares: where the data lives, who is acting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use techpack_model::{LOCAL_USER_ID, Principal};
use techpack_store::{Backend, DatabaseTarget, TechFileStore, open_store};
use uuid::Uuid;

/// Options every command shares.
#[derive(Debug, Clone, Args)]
pub struct GlobalOptions {
    /// Folder for the embedded database and blobs.
    #[arg(
        long,
        global = true,
        env = "TECHPACK_DATA_DIR",
        default_value = "techpack-data"
    )]
    pub data_dir: PathBuf,
    /// Database URL: sqlite://PATH or postgres://… (default: techpack.db in the data folder).
    #[arg(long, global = true, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Blob storage URL: file://DIR, memory:// or s3://bucket/prefix (default: blobs/ in the data folder).
    #[arg(long, global = true, env = "TECHPACK_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// The acting user's id (a UUID; default: the local user).
    #[arg(long, global = true, env = "TECHPACK_USER")]
    pub user: Option<Uuid>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// What commands share.
#[derive(Debug, Clone)]
pub struct Context {
    /// The database URL in use.
    pub database_url: String,
    /// The storage URL in use.
    pub storage_url: String,
    /// The acting user.
    pub user_id: Uuid,
    /// JSON output.
    pub json: bool,
}

impl Context {
    /// Resolves the defaults against the data folder.
    pub fn new(options: GlobalOptions) -> anyhow::Result<Self> {
        let data_dir = options.data_dir;
        let database_url = options
            .database_url
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("techpack.db").display()));
        // Refuse an unknown scheme before anything touches the disk.
        DatabaseTarget::parse(&database_url)?;
        let storage_url = options.storage_url.unwrap_or_else(|| {
            let blobs = absolute(&data_dir.join("blobs"));
            format!("file://{}", blobs.display())
        });
        Ok(Self {
            database_url,
            storage_url,
            user_id: options.user.unwrap_or(LOCAL_USER_ID),
            json: options.json,
        })
    }

    /// The blob store the storage URL names.
    pub fn blob_store(&self) -> anyhow::Result<techpack_blobs::BlobStore> {
        techpack_blobs::BlobStore::from_url(
            &self.storage_url,
            techpack_blobs::BlobStoreOptions::default(),
        )
        .with_context(|| format!("opening the blob storage {}", self.storage_url))
    }

    /// The acting principal.
    pub fn principal(&self) -> Principal {
        Principal::User(self.user_id)
    }

    /// The store, without touching the schema (for `migrate`).
    pub async fn raw_store(&self) -> anyhow::Result<Arc<dyn TechFileStore>> {
        open_store(&self.database_url)
            .await
            .with_context(|| format!("opening the database {}", redact(&self.database_url)))
    }

    /// The store, ready to use: the embedded SQLite database migrates itself; a PostgreSQL
    /// database must have been migrated with `techpack migrate` (production schema changes
    /// are deliberate).
    pub async fn store(&self) -> anyhow::Result<Arc<dyn TechFileStore>> {
        let store = self.raw_store().await?;
        match store.backend() {
            Backend::Sqlite => {
                store
                    .migrate_up()
                    .await
                    .context("migrating the embedded database")?;
            }
            Backend::Postgres => {
                let pending: Vec<_> = store
                    .migration_status()
                    .await?
                    .into_iter()
                    .filter(|m| !m.applied)
                    .collect();
                if !pending.is_empty() {
                    anyhow::bail!(
                        "the database has {} pending migration(s): run `techpack migrate` first",
                        pending.len()
                    );
                }
            }
        }
        Ok(store)
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
