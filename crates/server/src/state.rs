//! What every handler shares: the application, how callers are authenticated, the URL signer,
//! the server's settings and its metrics.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use techpack_app::App;
use techpack_blobs::UrlSigner;
use techpack_pipeline::CancellationToken;

use crate::auth::Authenticator;
use crate::config::ServerConfig;

/// The state of a running server, cloned into every handler.
#[derive(Clone)]
pub struct AppState {
    /// The application layer: store, blobs, providers, settings.
    pub app: App,
    /// How requests are authenticated.
    pub auth: Arc<Authenticator>,
    /// Mints and checks signed download links.
    pub signer: Arc<UrlSigner>,
    /// The server's own settings.
    pub config: Arc<ServerConfig>,
    /// The Prometheus registry `/metrics` renders.
    pub metrics: PrometheusHandle,
    /// Cancelled when the server shuts down: event streams end and workers hand jobs back.
    pub shutdown: CancellationToken,
}
