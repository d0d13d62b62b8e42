//! Global options and what every command shares: the settings (flags on top of the layers the
//! application reads) and the output mode.

use std::path::PathBuf;

use clap::Args;
use techpack_app::{App, Overrides, Settings};
use techpack_store::TechFileStore;
use uuid::Uuid;

/// Options every command takes. Each also has a setting in `techpack.toml` and a `TECHPACK_*`
/// variable (see the README's settings section); a flag wins over both.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOptions {
    /// Folder for the embedded database and blobs [env: TECHPACK_DATA_DIR] [default: techpack-data].
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://… [env: DATABASE_URL] [default: techpack.db in the data folder].
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Blob storage URL: file://DIR, memory:// or s3://bucket/prefix [env: TECHPACK_STORAGE_URL] [default: blobs/ in the data folder].
    #[arg(long, global = true)]
    pub storage_url: Option<String>,
    /// The acting user's id, a UUID [env: TECHPACK_USER] [default: the local user].
    #[arg(long, global = true)]
    pub user: Option<Uuid>,
    /// A settings file [env: TECHPACK_CONFIG] [default: ./techpack.toml when it exists].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// What commands share.
#[derive(Debug, Clone)]
pub struct Context {
    /// The settings in force.
    pub settings: Settings,
    /// JSON output.
    pub json: bool,
}

impl Context {
    /// Loads the settings with the flags on top.
    pub fn new(options: GlobalOptions) -> anyhow::Result<Self> {
        let overrides = Overrides {
            data_dir: options.data_dir,
            database_url: options.database_url,
            storage_url: options.storage_url,
            user: options.user,
        };
        let settings = Settings::load(options.config.as_deref(), &overrides)?;
        Ok(Self {
            settings,
            json: options.json,
        })
    }

    /// The acting user.
    pub fn user_id(&self) -> Uuid {
        self.settings.user_id()
    }

    /// The application, its store ready to use (see [`App::open`]).
    pub async fn app(&self) -> anyhow::Result<App> {
        Ok(App::open(self.settings.clone()).await?)
    }

    /// The store, without touching the schema (for `migrate`).
    pub async fn raw_store(&self) -> anyhow::Result<std::sync::Arc<dyn TechFileStore>> {
        Ok(techpack_app::open_store_unmigrated(&self.settings).await?)
    }
}
