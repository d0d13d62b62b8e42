//! Opening what techpack runs on, from the settings: the metadata store (with the policy for
//! migrations on first use), the blob store and the providers. [`App`] holds them for every
//! front end.

use std::sync::Arc;

use techpack_blobs::{BlobStore, BlobStoreOptions};
use techpack_model::Principal;
use techpack_pipeline::jobs::JobEnvironment;
use techpack_store::{Backend, DatabaseTarget, TechFileStore, open_store_with};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::providers::Providers;
use crate::settings::{Settings, redact_url};

/// What every operation runs on: settings, store, blob store and providers.
#[derive(Clone)]
pub struct App {
    settings: Arc<Settings>,
    store: Arc<dyn TechFileStore>,
    blobs: BlobStore,
    providers: Arc<Providers>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store.backend())
            .field("blobs", self.blobs.backend())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Opens the store, ready to use, and the blob store. The embedded SQLite database
    /// migrates itself on first use; a PostgreSQL database must have been migrated with
    /// `techpack migrate` (production schema changes are deliberate).
    pub async fn open(settings: Settings) -> AppResult<Self> {
        let store = open_store_unmigrated(&settings).await?;
        match store.backend() {
            Backend::Sqlite => {
                store.migrate_up().await?;
            }
            Backend::Postgres => {
                let pending = store
                    .migration_status()
                    .await?
                    .into_iter()
                    .filter(|migration| !migration.applied)
                    .count();
                if pending > 0 {
                    return Err(AppError::Config(format!(
                        "the database has {pending} pending migration(s): run `techpack migrate` first"
                    )));
                }
            }
        }
        let app = Self::with_store(settings, store)?;
        app.claim_blob_store().await;
        Ok(app)
    }

    /// Records this database in the blob store, so that cleanup run from any database sees
    /// who shares it. A store that cannot be written now is left for the operations that need
    /// it to report.
    async fn claim_blob_store(&self) {
        let claimed = match self.store.database_id().await {
            Ok(id) => self
                .blobs
                .claim_for_database(id)
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = claimed {
            tracing::warn!(%error, "could not record this database in the blob store");
        }
    }

    /// An application on a store opened elsewhere (tests, or after `migrate`).
    pub fn with_store(settings: Settings, store: Arc<dyn TechFileStore>) -> AppResult<Self> {
        let blobs = open_blob_store(&settings)?;
        let providers = Arc::new(Providers::new(settings.openai.clone()));
        Ok(Self {
            settings: Arc::new(settings),
            store,
            blobs,
            providers,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The metadata store.
    pub fn store(&self) -> &Arc<dyn TechFileStore> {
        &self.store
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The providers of this process.
    pub fn providers(&self) -> &Arc<Providers> {
        &self.providers
    }

    /// The user the settings name (the local user by default).
    pub fn user_id(&self) -> Uuid {
        self.settings.user_id()
    }

    /// That user as the acting principal.
    pub fn principal(&self) -> Principal {
        Principal::User(self.user_id())
    }

    /// What a job runner needs: the stores and the provider factory.
    pub fn job_environment(&self) -> JobEnvironment {
        JobEnvironment {
            store: self.store.clone(),
            blobs: self.blobs.clone(),
            providers: self.providers.factory(),
        }
    }
}

/// Opens the store the settings name without touching its schema (for `techpack migrate`).
/// An unknown URL scheme is refused before anything touches the disk.
pub async fn open_store_unmigrated(settings: &Settings) -> AppResult<Arc<dyn TechFileStore>> {
    let url = settings.database_url();
    DatabaseTarget::parse(&url)?;
    let pool = settings.database.pool()?;
    open_store_with(&url, &pool)
        .await
        .map_err(|error| match error {
            techpack_store::StoreError::Config(message) => AppError::Config(format!(
                "opening the database {}: {message}",
                redact_url(&url)
            )),
            other => other.into(),
        })
}

/// Opens the blob store the settings name, with their size limit.
pub fn open_blob_store(settings: &Settings) -> AppResult<BlobStore> {
    if settings.max_blob_bytes == 0 {
        return Err(AppError::Config(
            "setting `max_blob_bytes` must be at least 1 byte (default 50 MiB)".into(),
        ));
    }
    let options = settings
        .s3
        .apply(BlobStoreOptions::default().with_max_blob_size(settings.max_blob_bytes))?;
    Ok(BlobStore::from_url(&settings.storage_url(), options)?)
}
