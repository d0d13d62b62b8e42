//! Who is calling: a Supabase-compatible access token (`Authorization: Bearer <JWT>`) checked
//! against the project's JWT secret (HS256) or the public keys of a JWKS (RS256, ES256), or —
//! with no key configured — the local user of a loopback-only server.
//!
//! The token's `sub` becomes the acting user, so the store's row level security isolates users
//! exactly as for the command line; `role: service_role` becomes the service principal, which
//! sees every user's rows and reaches the admin routes. The algorithm comes from the key, never
//! from the token alone: an HS256 token is only ever checked against the shared secret and an
//! RS256/ES256 token only against the JWKS key its `kid` names, so `alg: none` and algorithm
//! confusion (an HS256 token "signed" with a public key) are refused.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use techpack_model::Principal;
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// The role claim of a Supabase service-role key.
pub const SERVICE_ROLE: &str = "service_role";

/// How long a fetched JWKS is trusted before an unknown `kid` may fetch it again.
const JWKS_REFETCH_AFTER: Duration = Duration::from_secs(60);

/// Who a request acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The principal every store call of the request runs as.
    pub principal: Principal,
}

impl Caller {
    /// The acting user; the service role acts for the user a request names.
    pub fn user_id(&self) -> Option<Uuid> {
        self.principal.user_id()
    }

    /// Whether the caller is the service role.
    pub fn is_service(&self) -> bool {
        matches!(self.principal, Principal::Service)
    }

    /// The user the request acts for: the caller's own id, or for the service role the one it
    /// names (`user` parameter), which it must name.
    pub fn acting_user(&self, named: Option<Uuid>) -> Result<Uuid, ApiError> {
        match (self.principal, named) {
            (Principal::User(id), None) => Ok(id),
            (Principal::User(id), Some(named)) if named == id => Ok(id),
            (Principal::User(_), Some(_)) => Err(ApiError::forbidden(
                "forbidden",
                "a user token acts only for its own user: leave `user` out",
            )),
            (Principal::Service, Some(named)) => Ok(named),
            (Principal::Service, None) => Err(ApiError::invalid(
                "the service role acts for a user it names: give `user` (a UUID)",
            )),
        }
    }

    /// Refuses anyone but the service role.
    pub fn require_service(&self) -> Result<(), ApiError> {
        if self.is_service() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "service_role_required",
                "this route is for the service role: call it with a service_role token",
            ))
        }
    }
}

/// Where the public keys of asymmetric tokens come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// A JWKS file read at start-up.
    File(PathBuf),
    /// A JWKS URL, fetched at start-up and again when a token names an unknown key.
    Url(String),
}

impl JwksSource {
    /// A path or an `http(s)://` URL.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("https://") || text.starts_with("http://") {
            JwksSource::Url(text.to_owned())
        } else {
            JwksSource::File(PathBuf::from(text))
        }
    }
}

/// What the server checks of a token.
#[derive(Clone)]
pub struct JwtSettings {
    /// The shared secret of HS256 tokens.
    pub secret: Option<SecretString>,
    /// The keys of RS256/ES256 tokens.
    pub jwks: Option<JwksSource>,
    /// The audience a token must name.
    pub audience: String,
    /// The issuer a token must name, when set.
    pub issuer: Option<String>,
}

/// How requests are authenticated.
pub enum Authenticator {
    /// No key configured: every request acts as this user (loopback only).
    LocalUser(Uuid),
    /// Access tokens required.
    Jwt(Box<JwtVerifier>),
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authenticator::LocalUser(id) => write!(f, "LocalUser({id})"),
            Authenticator::Jwt(_) => f.write_str("Jwt(..)"),
        }
    }
}

/// Checks access tokens.
pub struct JwtVerifier {
    secret: Option<DecodingKey>,
    jwks: Option<JwksSource>,
    keys: RwLock<KeyCache>,
    audience: String,
    issuer: Option<String>,
    http: reqwest::Client,
}

#[derive(Default)]
struct KeyCache {
    by_kid: HashMap<String, Jwk>,
    fetched_at: Option<Instant>,
}

/// The claims the server reads; others are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    role: Option<String>,
}

/// A key or JWKS that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthSetupError(pub String);

impl JwtVerifier {
    /// A verifier with the keys of `settings`; a JWKS is loaded now, so a wrong path or URL
    /// stops the server at start-up instead of refusing every request.
    pub async fn new(settings: JwtSettings) -> Result<Self, AuthSetupError> {
        let secret = settings.secret.as_ref().map(|secret| {
            let bytes = secret.expose_secret().as_bytes();
            DecodingKey::from_secret(bytes)
        });
        if let Some(secret) = &settings.secret
            && secret.expose_secret().len() < 32
        {
            return Err(AuthSetupError(
                "the JWT secret is shorter than 32 characters: use the project's JWT secret (Supabase: Settings → API → JWT secret)".into(),
            ));
        }
        let verifier = Self {
            secret,
            jwks: settings.jwks,
            keys: RwLock::new(KeyCache::default()),
            audience: settings.audience,
            issuer: settings.issuer,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|error| AuthSetupError(format!("an HTTP client for the JWKS: {error}")))?,
        };
        if verifier.jwks.is_some() {
            verifier.reload_keys().await?;
        }
        Ok(verifier)
    }

    async fn reload_keys(&self) -> Result<(), AuthSetupError> {
        let Some(source) = &self.jwks else {
            return Ok(());
        };
        let text =
            match source {
                JwksSource::File(path) => std::fs::read_to_string(path).map_err(|error| {
                    AuthSetupError(format!("reading the JWKS {}: {error}", path.display()))
                })?,
                JwksSource::Url(url) => {
                    let response = self.http.get(url).send().await.map_err(|error| {
                        AuthSetupError(format!("fetching the JWKS {url}: {error}"))
                    })?;
                    if !response.status().is_success() {
                        return Err(AuthSetupError(format!(
                            "fetching the JWKS {url}: HTTP {}",
                            response.status()
                        )));
                    }
                    response.text().await.map_err(|error| {
                        AuthSetupError(format!("fetching the JWKS {url}: {error}"))
                    })?
                }
            };
        let set: JwkSet = serde_json::from_str(&text)
            .map_err(|error| AuthSetupError(format!("the JWKS is not a JWK set: {error}")))?;
        let mut cache = self.keys.write().await;
        cache.by_kid = set
            .keys
            .into_iter()
            .filter_map(|key| key.common.key_id.clone().map(|kid| (kid, key)))
            .collect();
        cache.fetched_at = Some(Instant::now());
        Ok(())
    }

    async fn key_for(&self, kid: &str) -> Option<Jwk> {
        if let Some(key) = self.keys.read().await.by_kid.get(kid) {
            return Some(key.clone());
        }
        // A rotated key set: fetch again, but not on every forged kid.
        let stale = self
            .keys
            .read()
            .await
            .fetched_at
            .is_none_or(|at| at.elapsed() >= JWKS_REFETCH_AFTER);
        if matches!(self.jwks, Some(JwksSource::Url(_))) && stale {
            if let Err(error) = self.reload_keys().await {
                tracing::warn!(%error, "refreshing the JWKS");
            }
            return self.keys.read().await.by_kid.get(kid).cloned();
        }
        None
    }

    /// The principal a token proves, or why it proves nothing.
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        let invalid = |why: &str| {
            ApiError::unauthenticated("invalid_token", format!("the access token {why}"))
        };
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid("is not a signed JWT"))?;
        let (key, algorithm) = match header.alg {
            Algorithm::HS256 => match &self.secret {
                Some(secret) => (secret.clone(), Algorithm::HS256),
                None => {
                    return Err(invalid(
                        "is signed with a shared secret (HS256), which this server does not accept: sign it with a key of the JWKS",
                    ));
                }
            },
            Algorithm::RS256 | Algorithm::ES256 => {
                if self.jwks.is_none() {
                    return Err(invalid(&format!(
                        "is signed with {:?}, which needs a JWKS (server.jwks) this server does not have",
                        header.alg
                    )));
                }
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| invalid("names no key (`kid`)"))?;
                let jwk = self
                    .key_for(kid)
                    .await
                    .ok_or_else(|| invalid("names a key the JWKS does not have"))?;
                if let Some(declared) = jwk.common.key_algorithm
                    && format!("{declared:?}") != format!("{:?}", header.alg)
                {
                    return Err(invalid("names an algorithm its key is not for"));
                }
                let key = DecodingKey::from_jwk(&jwk)
                    .map_err(|_| invalid("names a key of the JWKS that cannot verify it"))?;
                (key, header.alg)
            }
            other => {
                return Err(invalid(&format!(
                    "uses {other:?}; accepted are HS256 (the project's JWT secret), RS256 and ES256 (a JWKS)"
                )));
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 30;
        validation.validate_nbf = true;
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer.as_str()]);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|error| {
            use jsonwebtoken::errors::ErrorKind as Jwt;
            match error.kind() {
                Jwt::ExpiredSignature => ApiError::unauthenticated(
                    "token_expired",
                    "the access token has expired: sign in again or refresh the session",
                ),
                Jwt::ImmatureSignature => ApiError::unauthenticated(
                    "token_not_yet_valid",
                    "the access token is not valid yet (`nbf` is in the future)",
                ),
                Jwt::InvalidAudience => ApiError::unauthenticated(
                    "wrong_audience",
                    format!("the access token is not for audience `{}`", self.audience),
                ),
                Jwt::InvalidIssuer => ApiError::unauthenticated(
                    "wrong_issuer",
                    "the access token comes from another issuer",
                ),
                Jwt::MissingRequiredClaim(claim) => invalid(&format!("lacks the `{claim}` claim")),
                Jwt::InvalidSignature => invalid("has a signature that does not verify"),
                _ => invalid("cannot be verified"),
            }
        })?;
        let claims = data.claims;
        if claims.role.as_deref() == Some(SERVICE_ROLE) {
            return Ok(Principal::Service);
        }
        let sub = claims.sub.unwrap_or_default();
        let user =
            Uuid::parse_str(&sub).map_err(|_| invalid("has a `sub` that is not a user id"))?;
        Ok(Principal::User(user))
    }
}

impl Authenticator {
    /// The caller a request's headers prove.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        match self {
            Authenticator::LocalUser(user) => Ok(Caller {
                principal: Principal::User(*user),
            }),
            Authenticator::Jwt(verifier) => {
                let header = authorization.ok_or_else(|| {
                    ApiError::unauthenticated(
                        "missing_token",
                        "send an access token: `Authorization: Bearer <JWT>`",
                    )
                })?;
                let token = header
                    .strip_prefix("Bearer ")
                    .or_else(|| header.strip_prefix("bearer "))
                    .map(str::trim)
                    .filter(|token| !token.is_empty())
                    .ok_or_else(|| {
                        ApiError::unauthenticated(
                            "invalid_token",
                            "the Authorization header must be `Bearer <JWT>`",
                        )
                    })?;
                Ok(Caller {
                    principal: verifier.verify(token).await?,
                })
            }
        }
    }

    /// Whether requests need a token.
    pub fn requires_tokens(&self) -> bool {
        matches!(self, Authenticator::Jwt(_))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(*caller);
        }
        let authorization = match parts.headers.get(axum::http::header::AUTHORIZATION) {
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::unauthenticated("invalid_token", "the Authorization header is not text")
            })?),
            None => None,
        };
        let caller = state.auth.authenticate(authorization).await?;
        parts.extensions.insert(caller);
        Ok(caller)
    }
}

/// Builds the authenticator the settings ask for.
pub async fn authenticator(
    settings: Option<JwtSettings>,
    local_user: Uuid,
) -> Result<Arc<Authenticator>, AuthSetupError> {
    Ok(Arc::new(match settings {
        None => Authenticator::LocalUser(local_user),
        Some(settings) => Authenticator::Jwt(Box::new(JwtVerifier::new(settings).await?)),
    }))
}
