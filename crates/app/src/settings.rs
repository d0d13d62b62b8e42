//! Settings, layered: defaults in code, then a `techpack.toml` (optional), then `TECHPACK_*`
//! environment variables, then command-line flags. Secrets (the database URL, API keys) are
//! wrapped so that `Debug` never prints them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use techpack_blobs::BlobStoreOptions;
use techpack_model::LOCAL_USER_ID;
use techpack_store::PoolSettings;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// The settings file read when `TECHPACK_CONFIG` names none: `techpack.toml` in the current
/// folder, when it exists.
pub const DEFAULT_CONFIG_FILE: &str = "techpack.toml";

/// The environment variable naming the settings file.
pub const CONFIG_FILE_ENV: &str = "TECHPACK_CONFIG";

/// Every setting of techpack. Each field can be set in `techpack.toml` (nested tables for the
/// sections), as `TECHPACK_<FIELD>` (sections as `TECHPACK_<SECTION>_<FIELD>`, e.g.
/// `TECHPACK_JOBS_LEASE_SECS`), or by the matching flag.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Folder of the embedded database and blobs (`TECHPACK_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…` (`DATABASE_URL`); default `DATA_DIR/techpack.db`.
    /// Secret: it may carry a password.
    #[serde(serialize_with = "serialize_secret")]
    pub database_url: Option<SecretString>,
    /// The database connections: pool size and timeouts.
    pub database: DatabaseSettings,
    /// `file://DIR`, `memory://` or `s3://bucket/prefix` (`TECHPACK_STORAGE_URL`); default
    /// `DATA_DIR/blobs`.
    pub storage_url: Option<String>,
    /// The largest blob (photo, upload, generated file) stored, in bytes
    /// (`TECHPACK_MAX_BLOB_BYTES`); default 50 MiB.
    pub max_blob_bytes: u64,
    /// The S3 connection of `s3://` storage.
    pub s3: S3Settings,
    /// The acting user (`TECHPACK_USER`); default the local user.
    pub user: Option<Uuid>,
    /// The generator used when a request names none: `local` or `openai`.
    pub provider: String,
    /// The `openai` provider's settings.
    pub openai: OpenAiSettings,
    /// Defaults of a tech-pack request.
    pub packs: PackSettings,
    /// Durable jobs and workers.
    pub jobs: JobSettings,
    /// The HTTP service (`techpack serve`).
    pub server: ServerSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("techpack-data"),
            database_url: None,
            database: DatabaseSettings::default(),
            storage_url: None,
            max_blob_bytes: techpack_blobs::DEFAULT_MAX_BLOB_SIZE,
            s3: S3Settings::default(),
            user: None,
            provider: "local".into(),
            openai: OpenAiSettings::default(),
            packs: PackSettings::default(),
            jobs: JobSettings::default(),
            server: ServerSettings::default(),
        }
    }
}

/// Settings of the OpenAI-compatible provider; unset fields take the provider's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenAiSettings {
    /// The API root, e.g. `http://localhost:11434/v1` (`TECHPACK_OPENAI_BASE_URL`).
    pub base_url: Option<String>,
    /// The API key (`TECHPACK_OPENAI_API_KEY`, or `OPENAI_API_KEY`). Secret.
    #[serde(serialize_with = "serialize_secret")]
    pub api_key: Option<SecretString>,
    /// The vision model for analyses (`TECHPACK_OPENAI_VISION_MODEL`).
    pub vision_model: Option<String>,
    /// The image model for close-ups and sketches (`TECHPACK_OPENAI_IMAGE_MODEL`).
    pub image_model: Option<String>,
    /// The size of generated images (`TECHPACK_OPENAI_IMAGE_SIZE`).
    pub image_size: Option<String>,
    /// Seconds one request may take (`TECHPACK_OPENAI_TIMEOUT_SECS`).
    pub timeout_secs: Option<f64>,
    /// Retries after the first attempt (`TECHPACK_OPENAI_MAX_RETRIES`).
    pub max_retries: Option<u32>,
    /// Requests in flight at once in this process, across all its jobs
    /// (`TECHPACK_OPENAI_CONCURRENCY`).
    pub concurrency: Option<usize>,
    /// Requests this process starts per minute, when limited
    /// (`TECHPACK_OPENAI_REQUESTS_PER_MINUTE`).
    pub requests_per_minute: Option<u32>,
    /// Seconds one step may take, retries included (`TECHPACK_OPENAI_DEADLINE_SECS`).
    pub deadline_secs: Option<f64>,
    /// The longest `Retry-After` waited out, in seconds; a longer one fails the step saying
    /// when to retry (`TECHPACK_OPENAI_MAX_RETRY_AFTER_SECS`).
    pub max_retry_after_secs: Option<f64>,
    /// Azure's `api-version`: set, `base_url` is the Azure resource and the model names are
    /// deployments (`TECHPACK_OPENAI_API_VERSION`).
    pub api_version: Option<String>,
    /// The key's header: `bearer`, `api-key` or `auto` (`TECHPACK_OPENAI_AUTH`).
    pub auth: Option<String>,
    /// A separate endpoint for the images API (`TECHPACK_OPENAI_IMAGES_BASE_URL`).
    pub images_base_url: Option<String>,
    /// The images endpoint's key (`TECHPACK_OPENAI_IMAGES_API_KEY`). Secret.
    #[serde(serialize_with = "serialize_secret")]
    pub images_api_key: Option<SecretString>,
}

impl OpenAiSettings {
    /// The value the provider's configuration reads under the environment name `name`
    /// (`TECHPACK_OPENAI_…`), so the provider reads these settings exactly as it reads the
    /// environment.
    pub fn lookup(&self, name: &str) -> Option<String> {
        use techpack_generate::openai as env;
        let text = |value: &Option<String>| value.clone();
        match name {
            env::ENV_BASE_URL => text(&self.base_url),
            env::ENV_API_KEY | env::ENV_API_KEY_FALLBACK => self
                .api_key
                .as_ref()
                .map(|key| key.expose_secret().to_owned()),
            env::ENV_VISION_MODEL => text(&self.vision_model),
            env::ENV_IMAGE_MODEL => text(&self.image_model),
            env::ENV_IMAGE_SIZE => text(&self.image_size),
            env::ENV_TIMEOUT_SECS => self.timeout_secs.map(|secs| secs.to_string()),
            env::ENV_MAX_RETRIES => self.max_retries.map(|retries| retries.to_string()),
            env::ENV_CONCURRENCY => self.concurrency.map(|limit| limit.to_string()),
            env::ENV_REQUESTS_PER_MINUTE => self.requests_per_minute.map(|rpm| rpm.to_string()),
            env::ENV_DEADLINE_SECS => self.deadline_secs.map(|secs| secs.to_string()),
            env::ENV_MAX_RETRY_AFTER_SECS => self.max_retry_after_secs.map(|secs| secs.to_string()),
            env::ENV_API_VERSION => text(&self.api_version),
            env::ENV_AUTH => text(&self.auth),
            env::ENV_IMAGES_BASE_URL => text(&self.images_base_url),
            env::ENV_IMAGES_API_KEY => self
                .images_api_key
                .as_ref()
                .map(|key| key.expose_secret().to_owned()),
            _ => None,
        }
    }
}

/// What a tech-pack request does unless it says otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PackSettings {
    /// Close-ups per view.
    pub closeups_per_view: usize,
    /// Provider calls of one pack in flight at once.
    pub concurrency: usize,
    /// Mirror analyses into the legacy `revision_vision_analysis` table.
    pub legacy_dual_write: bool,
}

impl Default for PackSettings {
    fn default() -> Self {
        Self {
            closeups_per_view: 4,
            concurrency: 4,
            legacy_dual_write: true,
        }
    }
}

/// The database connections of one process (`TECHPACK_DATABASE_<FIELD>`, `[database]` in the
/// settings file). Every process (server, each worker) holds its own pool: together they must
/// stay below PostgreSQL's `max_connections`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// Connections the process holds at most (on SQLite: its readers).
    pub max_connections: u32,
    /// Seconds a request waits for a free connection before it fails as unavailable.
    pub acquire_timeout_secs: f64,
    /// Seconds one statement may run before PostgreSQL cancels it; 0 for no limit. Migrations
    /// are not limited.
    pub statement_timeout_secs: f64,
    /// Seconds a session may sit idle inside a transaction before PostgreSQL ends it (and
    /// frees the row locks of a stalled process).
    pub idle_in_transaction_timeout_secs: f64,
    /// Seconds an unused connection is kept open; 0 keeps it.
    pub idle_timeout_secs: f64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        let pool = PoolSettings::default();
        Self {
            max_connections: pool.max_connections,
            acquire_timeout_secs: pool.acquire_timeout.as_secs_f64(),
            statement_timeout_secs: pool.statement_timeout.map_or(0.0, |d| d.as_secs_f64()),
            idle_in_transaction_timeout_secs: pool.idle_in_transaction_timeout.as_secs_f64(),
            idle_timeout_secs: pool.idle_timeout.map_or(0.0, |d| d.as_secs_f64()),
        }
    }
}

impl DatabaseSettings {
    /// The store's pool settings, refusing values it cannot use with the setting named.
    pub fn pool(&self) -> AppResult<PoolSettings> {
        if self.max_connections == 0 {
            return Err(AppError::Config(
                "setting `database.max_connections` must be at least 1 (default 16)".into(),
            ));
        }
        let required = |name: &str, value: f64| -> AppResult<Duration> {
            Ok(seconds_setting(name, value, false)?.unwrap_or_default())
        };
        Ok(PoolSettings {
            max_connections: self.max_connections,
            acquire_timeout: required("database.acquire_timeout_secs", self.acquire_timeout_secs)?,
            statement_timeout: seconds_setting(
                "database.statement_timeout_secs",
                self.statement_timeout_secs,
                true,
            )?,
            idle_in_transaction_timeout: required(
                "database.idle_in_transaction_timeout_secs",
                self.idle_in_transaction_timeout_secs,
            )?,
            idle_timeout: seconds_setting(
                "database.idle_timeout_secs",
                self.idle_timeout_secs,
                true,
            )?,
        })
    }
}

/// A setting in seconds as a duration: `None` for 0 where `zero_is_off`; refused, with the
/// setting `key` named, when negative, not a number, 0 where it is not allowed, or absurdly
/// large (`Duration` would overflow).
fn seconds_setting(key: &str, value: f64, zero_is_off: bool) -> AppResult<Option<Duration>> {
    let zero_refused = value == 0.0 && !zero_is_off;
    if !value.is_finite() || value < 0.0 || zero_refused || value > 1e9 {
        let least = if zero_is_off {
            "0 (off) or more"
        } else {
            "more than 0"
        };
        return Err(AppError::Config(format!(
            "setting `{key}` is {value}: it takes seconds, {least}"
        )));
    }
    Ok((value > 0.0).then(|| Duration::from_secs_f64(value)))
}

/// The S3 connection of `s3://` storage (`TECHPACK_S3_<FIELD>`, `[s3]` in the settings file).
/// Unset fields keep what the standard `AWS_*` environment says (`AWS_ACCESS_KEY_ID`,
/// `AWS_REGION`, `AWS_ENDPOINT_URL` …), and without keys anywhere the credentials come from the
/// platform (ECS task role, EKS web identity, EC2 instance metadata).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct S3Settings {
    /// The endpoint of an S3-compatible service (MinIO, R2, Ceph …); AWS's own by default.
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key. Secret.
    #[serde(serialize_with = "serialize_secret")]
    pub secret_access_key: Option<SecretString>,
    /// A session token of temporary credentials. Secret.
    #[serde(serialize_with = "serialize_secret")]
    pub session_token: Option<SecretString>,
    /// `true` for `https://bucket.endpoint/key` addresses, `false` for `https://endpoint/bucket/key`
    /// (what MinIO and most self-hosted services need).
    pub virtual_hosted_style: Option<bool>,
    /// Allow a plain `http://` endpoint.
    pub allow_http: Option<bool>,
    /// Retries of one S3 request after a connection error, a timeout or a 5xx answer.
    pub max_retries: usize,
    /// Seconds one S3 request may keep retrying.
    pub retry_timeout_secs: f64,
}

impl Default for S3Settings {
    fn default() -> Self {
        let blobs = BlobStoreOptions::default();
        Self {
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            virtual_hosted_style: None,
            allow_http: None,
            max_retries: blobs.s3_max_retries,
            retry_timeout_secs: blobs.s3_retry_timeout.as_secs_f64(),
        }
    }
}

impl S3Settings {
    /// `options` with these settings applied over the `AWS_*` environment.
    pub fn apply(&self, mut options: BlobStoreOptions) -> AppResult<BlobStoreOptions> {
        let timeout = seconds_setting("s3.retry_timeout_secs", self.retry_timeout_secs, false)?
            .unwrap_or_default();
        let text = [
            ("aws_endpoint", self.endpoint.clone()),
            ("aws_region", self.region.clone()),
            ("aws_access_key_id", self.access_key_id.clone()),
            (
                "aws_secret_access_key",
                self.secret_access_key
                    .as_ref()
                    .map(|s| s.expose_secret().to_owned()),
            ),
            (
                "aws_session_token",
                self.session_token
                    .as_ref()
                    .map(|s| s.expose_secret().to_owned()),
            ),
            (
                "aws_virtual_hosted_style_request",
                self.virtual_hosted_style.map(|b| b.to_string()),
            ),
            ("aws_allow_http", self.allow_http.map(|b| b.to_string())),
        ];
        for (key, value) in text {
            if let Some(value) = value {
                options = options.with_s3_config(key, value);
            }
        }
        Ok(options.with_s3_retry(self.max_retries, timeout))
    }
}

/// Durable jobs: how long a lease lasts, how often workers look for work, how often a job is
/// tried.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct JobSettings {
    /// Seconds a job stays its runner's without a heartbeat (`TECHPACK_JOBS_LEASE_SECS`; the
    /// older `TECHPACK_JOB_LEASE_SECS` is read too).
    pub lease_secs: f64,
    /// Seconds a worker waits for a notification before it looks at the queue again.
    pub poll_secs: f64,
    /// Runs of a job before it is given up.
    pub max_attempts: i32,
    /// Jobs one worker runs at once.
    pub worker_concurrency: usize,
    /// Jobs one user may have running at once, across all workers.
    pub per_user_cap: u32,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            lease_secs: 30.0,
            poll_secs: 2.0,
            max_attempts: techpack_model::DEFAULT_MAX_ATTEMPTS,
            worker_concurrency: 2,
            per_user_cap: 2,
        }
    }
}

/// The HTTP service: where it listens, how it authenticates callers, what it lets through.
/// Sections are read as `TECHPACK_SERVER_<FIELD>`; the JWT secret also as `TECHPACK_JWT_SECRET`
/// (the name Supabase deployments use).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// The address to listen on.
    pub listen: String,
    /// Jobs the in-process worker runs at once; 0 leaves every job to `techpack worker`
    /// processes.
    pub workers: usize,
    /// The Supabase project's JWT secret, for HS256 access tokens. Secret.
    #[serde(serialize_with = "serialize_secret")]
    pub jwt_secret: Option<SecretString>,
    /// A JWKS (a file path or an `https://` URL) with the public keys of RS256/ES256 access
    /// tokens, e.g. `https://<project>.supabase.co/auth/v1/.well-known/jwks.json`.
    pub jwks: Option<String>,
    /// The audience an access token must name.
    pub jwt_audience: String,
    /// The issuer an access token must name, when set.
    pub jwt_issuer: Option<String>,
    /// The secret signing blob download links (at least 32 bytes). Unset: a random one per
    /// process, so links end with the process. Secret.
    #[serde(serialize_with = "serialize_secret")]
    pub url_signing_secret: Option<SecretString>,
    /// Seconds a signed download link stays valid.
    pub signed_url_secs: u64,
    /// The largest request body (an upload, a pack's photos together), in bytes.
    pub max_body_bytes: u64,
    /// Seconds a request may take (event streams and downloads excepted).
    pub request_timeout_secs: f64,
    /// Origins a browser app may call the API from (`*` for any); none by default.
    pub cors_origins: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            workers: 2,
            jwt_secret: None,
            jwks: None,
            jwt_audience: "authenticated".into(),
            jwt_issuer: None,
            url_signing_secret: None,
            signed_url_secs: 900,
            max_body_bytes: 256 * 1024 * 1024,
            request_timeout_secs: 60.0,
            cors_origins: Vec::new(),
        }
    }
}

/// The settings a front end's flags set: only what the user gave, so that everything else keeps
/// the value of the lower layers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--storage-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_url: Option<String>,
    /// `--user`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Uuid>,
}

impl Settings {
    /// Loads the layers: defaults, the settings file (`config_file`, else `TECHPACK_CONFIG`,
    /// else `techpack.toml` when it exists), the environment, then `overrides`.
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> AppResult<Self> {
        let env = Env::raw();
        let named = config_file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from));
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match &named {
            Some(path) if !path.is_file() => {
                return Err(AppError::Config(format!(
                    "the settings file {} does not exist (named by {})",
                    path.display(),
                    if config_file.is_some() {
                        "--config".to_owned()
                    } else {
                        CONFIG_FILE_ENV.to_owned()
                    }
                )));
            }
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE))
            }
            None => {}
        }
        // Older and tool-wide names first, so the TECHPACK_ names win over them.
        let fallbacks = Env::raw()
            .only(&FALLBACK_VARIABLES.map(|(name, _)| name))
            .map(|name| {
                let key = FALLBACK_VARIABLES
                    .iter()
                    .find(|(variable, _)| name == *variable)
                    .map_or("", |(_, key)| *key);
                key.into()
            });
        let environment = env.filter_map(|name| environment_key(name.as_str()).map(Into::into));
        let figment = figment
            .merge(fallbacks)
            .merge(environment)
            .merge(Serialized::defaults(overrides));
        figment
            .extract()
            .map_err(|error| AppError::Config(settings_error_message(error)))
    }

    /// The database URL in use: the setting, else the embedded SQLite file in the data folder.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!(
                "sqlite://{}",
                absolute(&self.data_dir.join("techpack.db")).display()
            ),
        }
    }

    /// Whether the database is the embedded default (no URL set).
    pub fn uses_default_database(&self) -> bool {
        self.database_url.is_none()
    }

    /// The blob storage URL in use: the setting, else a folder in the data folder: `blobs/`
    /// for the embedded database, and for any other database a folder of its own
    /// (`blobs-<hash of its URL without credentials>`), so that switching `--database-url`
    /// never puts two databases' blobs in one store (cleanup refuses a shared store).
    pub fn storage_url(&self) -> String {
        if let Some(url) = &self.storage_url {
            return url.clone();
        }
        let folder = match &self.database_url {
            None => "blobs".to_owned(),
            Some(url) => {
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(without_credentials(url.expose_secret()));
                format!("blobs-{}", &hex::encode(digest)[..12])
            }
        };
        format!("file://{}", absolute(&self.data_dir.join(folder)).display())
    }

    /// The acting user: the setting, else the local user.
    pub fn user_id(&self) -> Uuid {
        self.user.unwrap_or(LOCAL_USER_ID)
    }
}

/// Variables read under an older or tool-wide name, with the setting each sets.
const FALLBACK_VARIABLES: [(&str, &str); 3] = [
    ("OPENAI_API_KEY", "openai.api_key"),
    ("TECHPACK_JOB_LEASE_SECS", "jobs.lease_secs"),
    ("TECHPACK_JWT_SECRET", "server.jwt_secret"),
];

/// The settings path an environment variable sets, or `None` for a variable that is not a
/// setting (`TECHPACK_LOG`, `PATH` …). Sections are nested with dots.
fn environment_key(name: &str) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    if upper == "DATABASE_URL" {
        return Some("database_url".into());
    }
    let rest = upper.strip_prefix("TECHPACK_")?;
    let lower = rest.to_ascii_lowercase();
    let key = match lower.as_str() {
        "data_dir" | "database_url" | "storage_url" | "max_blob_bytes" | "user" | "provider" => {
            lower.clone()
        }
        _ => {
            let (section, field) = lower.split_once('_')?;
            if !matches!(
                section,
                "database" | "s3" | "openai" | "packs" | "jobs" | "server"
            ) {
                return None;
            }
            format!("{section}.{field}")
        }
    };
    Some(key)
}

/// A settings error as one sentence naming the setting and where its value came from.
fn settings_error_message(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|error| {
            let key = if error.path.is_empty() {
                String::new()
            } else {
                format!("setting `{}`: ", error.path.join("."))
            };
            let source = error
                .metadata
                .as_ref()
                .map(|meta| format!(" (from {})", meta.name))
                .unwrap_or_default();
            format!("{key}{}{source}", error.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn serialize_secret<S: serde::Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_some(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A URL without its user name and password (so a rotated password names the same database).
fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// A URL with its password hidden, for messages and logs.
pub fn redact_url(url: &str) -> String {
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

#[cfg(test)]
// figment's test jail returns its own large error type; the tests cannot choose another.
#[allow(clippy::result_large_err)]
mod tests {
    use techpack_generate::openai::ENV_API_KEY;

    use super::*;

    #[test]
    fn layers_apply_in_order_and_secrets_stay_hidden() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file(
                DEFAULT_CONFIG_FILE,
                r#"
                    data_dir = "from-file"
                    storage_url = "memory://"
                    [jobs]
                    lease_secs = 5.0
                    per_user_cap = 7
                    [openai]
                    api_key = "sk-from-file"
                "#,
            )?;
            jail.set_env("TECHPACK_DATA_DIR", "from-env");
            jail.set_env("TECHPACK_JOBS_LEASE_SECS", "9");
            jail.set_env("DATABASE_URL", "postgres://u:hunter2@db/x");
            jail.set_env("OPENAI_API_KEY", "sk-fallback");
            jail.set_env("TECHPACK_OPENAI_API_KEY", "sk-from-env");
            jail.set_env("TECHPACK_LOG", "debug");
            let overrides = Overrides {
                data_dir: Some("from-flag".into()),
                ..Overrides::default()
            };
            let settings = Settings::load(None, &overrides).expect("settings");
            assert_eq!(settings.data_dir, PathBuf::from("from-flag"));
            assert_eq!(settings.storage_url.as_deref(), Some("memory://"));
            assert_eq!(settings.jobs.lease_secs, 9.0);
            assert_eq!(settings.jobs.per_user_cap, 7);
            assert_eq!(settings.database_url(), "postgres://u:hunter2@db/x");
            assert_eq!(
                settings.openai.lookup(ENV_API_KEY).as_deref(),
                Some("sk-from-env")
            );
            let debug = format!("{settings:?}");
            assert!(!debug.contains("hunter2"), "{debug}");
            assert!(!debug.contains("sk-from"), "{debug}");
            Ok(())
        });
    }

    #[test]
    fn database_settings_reach_the_pool_and_bad_values_name_the_setting() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file(
                DEFAULT_CONFIG_FILE,
                "[database]\nmax_connections = 40\nstatement_timeout_secs = 2.5\n",
            )?;
            jail.set_env("TECHPACK_DATABASE_URL", "postgres://db/x");
            jail.set_env("TECHPACK_DATABASE_ACQUIRE_TIMEOUT_SECS", "4");
            jail.set_env("TECHPACK_DATABASE_IDLE_TIMEOUT_SECS", "0");
            let settings = Settings::load(None, &Overrides::default()).expect("settings");
            assert_eq!(settings.database_url(), "postgres://db/x");
            let pool = settings.database.pool().expect("pool settings");
            assert_eq!(
                pool,
                PoolSettings {
                    max_connections: 40,
                    acquire_timeout: Duration::from_secs(4),
                    statement_timeout: Some(Duration::from_millis(2500)),
                    idle_in_transaction_timeout: Duration::from_secs(30),
                    idle_timeout: None,
                }
            );
            assert_eq!(
                Settings::default().database.pool().unwrap(),
                PoolSettings::default()
            );

            for (name, value, expected) in [
                (
                    "MAX_CONNECTIONS",
                    "0",
                    "`database.max_connections` must be at least 1",
                ),
                (
                    "ACQUIRE_TIMEOUT_SECS",
                    "0",
                    "`database.acquire_timeout_secs` is 0",
                ),
                (
                    "STATEMENT_TIMEOUT_SECS",
                    "-1",
                    "`database.statement_timeout_secs` is -1",
                ),
                (
                    "IDLE_IN_TRANSACTION_TIMEOUT_SECS",
                    "0",
                    "idle_in_transaction_timeout_secs",
                ),
            ] {
                jail.set_env(format!("TECHPACK_DATABASE_{name}"), value);
                let settings = Settings::load(None, &Overrides::default()).expect("settings");
                let error = settings.database.pool().unwrap_err().to_string();
                assert!(error.contains(expected), "{name}={value}: {error}");
                jail.set_env(format!("TECHPACK_DATABASE_{name}"), "3");
            }
            Ok(())
        });
    }

    #[test]
    fn the_blob_size_limit_is_a_setting_the_blob_store_obeys() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            let defaults = Settings::load(None, &Overrides::default()).expect("settings");
            assert_eq!(
                defaults.max_blob_bytes,
                techpack_blobs::DEFAULT_MAX_BLOB_SIZE
            );
            jail.set_env("TECHPACK_MAX_BLOB_BYTES", "2147483648");
            jail.set_env("TECHPACK_STORAGE_URL", "memory://");
            let settings = Settings::load(None, &Overrides::default()).expect("settings");
            assert_eq!(settings.max_blob_bytes, 2 << 30);
            let store = crate::services::open_blob_store(&settings).expect("a blob store");
            assert_eq!(store.options().max_blob_size, 2 << 30);
            let none = Settings {
                max_blob_bytes: 0,
                ..settings
            };
            let error = crate::services::open_blob_store(&none)
                .unwrap_err()
                .to_string();
            assert!(error.contains("max_blob_bytes"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn the_fallback_api_key_and_old_lease_name_are_read() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("OPENAI_API_KEY", "sk-fallback");
            jail.set_env("TECHPACK_JOB_LEASE_SECS", "4");
            let settings = Settings::load(None, &Overrides::default()).expect("settings");
            assert_eq!(
                settings.openai.lookup(ENV_API_KEY).as_deref(),
                Some("sk-fallback")
            );
            assert_eq!(settings.jobs.lease_secs, 4.0);
            assert!(settings.uses_default_database());
            assert!(
                settings
                    .database_url()
                    .ends_with("techpack-data/techpack.db")
            );
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_the_setting_and_its_source() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("TECHPACK_USER", "not-a-uuid");
            let error = Settings::load(None, &Overrides::default()).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("setting `user`"), "{message}");
            assert!(
                message.contains("TECHPACK_USER") || message.contains("environment"),
                "{message}"
            );
            let missing = Settings::load(Some(Path::new("nope.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(missing.contains("nope.toml does not exist"), "{missing}");
            Ok(())
        });
    }

    #[test]
    fn another_database_gets_its_own_blob_folder() {
        let embedded = Settings::default();
        assert!(embedded.storage_url().ends_with("techpack-data/blobs"));
        let postgres = |url: &str| Settings {
            database_url: Some(SecretString::from(url.to_owned())),
            ..Settings::default()
        };
        let a = postgres("postgres://app:one@db:5432/prod").storage_url();
        let rotated = postgres("postgres://app:two@db:5432/prod").storage_url();
        let b = postgres("postgres://app:one@db:5432/staging").storage_url();
        assert_eq!(a, rotated, "a new password names the same database");
        assert_ne!(a, b);
        assert!(a.contains("techpack-data/blobs-"), "{a}");
    }

    #[test]
    fn passwords_are_hidden_in_urls() {
        assert_eq!(
            redact_url("postgres://app:secret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
