//! The server's settings, checked once at start-up: where to listen, how to authenticate, how
//! large and how long a request may be. A server without a key refuses to listen anywhere but
//! on loopback, so an unauthenticated API is never reachable from another machine.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::ExposeSecret;
use techpack_app::{AppError, AppResult, Settings};
use techpack_blobs::SigningSecret;

use crate::auth::{JwksSource, JwtSettings};

/// What `techpack serve`'s flags override.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// `--listen ADDR`.
    pub listen: Option<String>,
    /// `--workers N`.
    pub workers: Option<usize>,
}

/// The server's settings, checked.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Jobs the in-process worker runs at once (0: none).
    pub workers: usize,
    /// Token checks; `None` serves the local user on loopback.
    pub jwt: Option<JwtSettings>,
    /// Signs download links.
    pub signing_secret: SigningSecret,
    /// Whether the signing secret was configured (else links end with the process).
    pub signing_secret_configured: bool,
    /// How long a download link lasts.
    pub signed_url_ttl: Duration,
    /// The largest request body.
    pub max_body_bytes: u64,
    /// How long a request may take (streams excepted).
    pub request_timeout: Duration,
    /// Origins allowed to call from a browser.
    pub cors_origins: Vec<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("workers", &self.workers)
            .field("authenticated", &self.jwt.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// The server settings of `settings` with the flags of `options`, checked.
    pub fn from_settings(settings: &Settings, options: &ServeOptions) -> AppResult<Self> {
        let server = &settings.server;
        let listen_text = options.listen.as_deref().unwrap_or(&server.listen);
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            AppError::Invalid(format!(
                "cannot listen on `{listen_text}`: give an address and port such as 127.0.0.1:8080 or 0.0.0.0:8080"
            ))
        })?;
        let jwt = match (&server.jwt_secret, &server.jwks) {
            (None, None) => None,
            (secret, jwks) => Some(JwtSettings {
                secret: secret.clone(),
                jwks: jwks.as_deref().map(JwksSource::parse),
                audience: server.jwt_audience.clone(),
                issuer: server.jwt_issuer.clone(),
            }),
        };
        if jwt.is_none() && !listen.ip().is_loopback() {
            return Err(AppError::Config(format!(
                "refusing to serve {listen} without authentication: set server.jwt_secret (TECHPACK_JWT_SECRET) or server.jwks (TECHPACK_SERVER_JWKS), or listen on 127.0.0.1"
            )));
        }
        let (signing_secret, signing_secret_configured) = match &server.url_signing_secret {
            Some(secret) => (
                SigningSecret::new(secret.expose_secret().as_bytes().to_vec()).map_err(
                    |error| AppError::Config(format!("server.url_signing_secret: {error}")),
                )?,
                true,
            ),
            None => {
                let random: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
                (
                    SigningSecret::new(random).expect("32 random bytes are long enough"),
                    false,
                )
            }
        };
        if !server.request_timeout_secs.is_finite() || server.request_timeout_secs <= 0.0 {
            return Err(AppError::Invalid(
                "server.request_timeout_secs must be a positive number of seconds".into(),
            ));
        }
        if server.max_body_bytes == 0 {
            return Err(AppError::Invalid(
                "server.max_body_bytes must be at least 1".into(),
            ));
        }
        Ok(Self {
            listen,
            workers: options.workers.unwrap_or(server.workers),
            jwt,
            signing_secret,
            signing_secret_configured,
            signed_url_ttl: Duration::from_secs(server.signed_url_secs.max(1)),
            max_body_bytes: server.max_body_bytes,
            request_timeout: Duration::from_secs_f64(server.request_timeout_secs),
            cors_origins: server.cors_origins.clone(),
        })
    }
}
