//! The application layer of techpack: the one composition root every front end (the `techpack`
//! command, the HTTP server) goes through, so that none of them holds a rule of its own.
//!
//! - [`settings`]: defaults → `techpack.toml` → `TECHPACK_*` environment → flags, secrets
//!   redacted;
//! - [`services`]: opening the store (migrating the embedded database on first use), the blob
//!   store and the providers ([`App`]);
//! - [`packs`]: building a tech-pack request from user input, submitting it as a job, running
//!   it here or following it elsewhere, with a typed stream of updates;
//! - [`providers`]: the one provider factory, one instance per process;
//! - [`error`]: every error of every crate as a kind and a stable code, mapped to an exit
//!   status and an HTTP status in one place ([`ErrorReport`]).

pub mod error;
pub mod packs;
pub mod products;
pub mod providers;
pub mod services;
pub mod settings;

pub use error::{AppError, AppResult, ErrorReport, chain_message, exit_status, http_status};
pub use packs::{
    JobEnd, JobUpdate, PackInput, RunOptions, Submitted, UpdateSender, ViewUpload, WaitControl,
};
pub use providers::Providers;
pub use services::{App, open_blob_store, open_store_unmigrated};
pub use settings::{Overrides, Settings, redact_url};
