//! The HTTP service of techpack (`techpack serve`): the application layer behind an
//! authenticated, documented API under `/api/v1`, with live job events, streamed uploads,
//! signed downloads, health, metrics and an OpenAPI document.
//!
//! - [`auth`]: Supabase-compatible access tokens (HS256 secret or a JWKS) → the acting
//!   principal;
//! - [`routes`]: one module per resource, and the router with its layers;
//! - [`error`]: every error as `{"error": {"code", "message", "request_id"}}` with the status
//!   of its kind (the application layer's one mapping);
//! - [`observability`]: request ids, JSON logs, Prometheus metrics;
//! - [`openapi`]: the document at `/openapi.json` and the docs page at `/docs`;
//! - [`config`]: the server's settings, checked at start-up.

pub mod auth;
pub mod config;
pub mod error;
pub mod observability;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use techpack_app::{App, AppError, AppResult};
use techpack_blobs::UrlSigner;
use techpack_pipeline::CancellationToken;
use techpack_pipeline::jobs::{WorkerOptions, default_worker_id, run_worker};
use tokio::net::TcpListener;

pub use config::{ServeOptions, ServerConfig};
pub use error::{ApiError, ApiResult};
pub use state::AppState;

/// A server bound to its address, ready to serve.
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Checks the configuration, loads the keys and binds the address; nothing is served yet.
    pub async fn bind(app: App, config: ServerConfig) -> AppResult<Self> {
        let auth = auth::authenticator(config.jwt.clone(), app.user_id())
            .await
            .map_err(|error| AppError::Config(error.to_string()))?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| AppError::Io {
                what: format!("listening on {}", config.listen),
                source,
            })?;
        if !config.signing_secret_configured {
            tracing::warn!(
                "server.url_signing_secret is not set: download links are signed with a key of this process and stop working when it exits or on another server"
            );
        }
        let signer = Arc::new(UrlSigner::new(config.signing_secret.clone()));
        let state = AppState {
            app,
            auth,
            signer,
            config: Arc::new(config),
            metrics: observability::metrics_handle(),
            shutdown: CancellationToken::new(),
        };
        Ok(Self { listener, state })
    }

    /// The address the server listens on (the port chosen, for port 0).
    pub fn local_addr(&self) -> AppResult<SocketAddr> {
        self.listener.local_addr().map_err(|source| AppError::Io {
            what: "reading the listening address".into(),
            source,
        })
    }

    /// Serves until `shutdown` is cancelled: then it stops accepting connections, ends event
    /// streams, lets requests in flight finish, and the in-process worker hands running jobs
    /// back to the queue (their finished steps are kept) before this returns.
    pub async fn serve(self, shutdown: CancellationToken) -> AppResult<()> {
        let Server { listener, state } = self;
        let addr = listener.local_addr().ok();
        let worker = (state.config.workers > 0).then(|| {
            let environment = state.app.job_environment();
            let jobs = &state.app.settings().jobs;
            let options = WorkerOptions {
                worker_id: default_worker_id(),
                concurrency: state.config.workers,
                per_user_cap: jobs.per_user_cap,
                lease: std::time::Duration::from_secs_f64(jobs.lease_secs.max(0.01)),
                poll: std::time::Duration::from_secs_f64(jobs.poll_secs.max(0.01)),
                exit_when_idle: false,
            };
            let worker_shutdown = state.shutdown.clone();
            tokio::spawn(
                async move { run_worker(environment, options, worker_shutdown, None).await },
            )
        });
        tracing::info!(
            address = ?addr,
            workers = state.config.workers,
            authenticated = state.auth.requires_tokens(),
            "serving"
        );
        let server_shutdown = state.shutdown.clone();
        let router = routes::router(state);
        let stop = shutdown.clone();
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                stop.cancelled().await;
                // Event streams and the worker watch this; requests in flight finish.
                server_shutdown.cancel();
            })
            .await;
        if let Some(worker) = worker {
            match worker.await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::error!(%error, "the in-process worker stopped"),
                Err(error) => tracing::error!(%error, "the in-process worker panicked"),
            }
        }
        served.map_err(|source| AppError::Io {
            what: "serving HTTP".into(),
            source,
        })
    }

    /// The state the routes share (for tests and embedding).
    pub fn state(&self) -> &AppState {
        &self.state
    }
}
