//! Settings of the `openai` provider: defaults in code, overridable from the environment (or
//! from anything that answers to the environment's names, as `techpack.toml` does), and the
//! endpoints they describe: OpenAI itself, Azure OpenAI (deployment URLs with `api-version`, or
//! the `/openai/v1` API), and OpenAI-compatible servers such as vLLM and Ollama.

use std::time::Duration;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use crate::CreditCosts;

/// Environment variable naming the endpoint, e.g. `http://localhost:11434/v1` for Ollama.
pub const ENV_BASE_URL: &str = "TECHPACK_OPENAI_BASE_URL";
/// Environment variable holding the API key; wins over [`ENV_API_KEY_FALLBACK`].
pub const ENV_API_KEY: &str = "TECHPACK_OPENAI_API_KEY";
/// The API key variable every OpenAI tool reads.
pub const ENV_API_KEY_FALLBACK: &str = "OPENAI_API_KEY";
/// Environment variable naming the vision (chat) model, or Azure deployment, used for analyses.
pub const ENV_VISION_MODEL: &str = "TECHPACK_OPENAI_VISION_MODEL";
/// Environment variable naming the image model, or Azure deployment, used for close-ups and
/// sketches.
pub const ENV_IMAGE_MODEL: &str = "TECHPACK_OPENAI_IMAGE_MODEL";
/// Environment variable with the size of generated images (`aspect`, `1024x1024`, `auto` …).
pub const ENV_IMAGE_SIZE: &str = "TECHPACK_OPENAI_IMAGE_SIZE";
/// Environment variable with the per-request timeout in seconds (fractions allowed).
pub const ENV_TIMEOUT_SECS: &str = "TECHPACK_OPENAI_TIMEOUT_SECS";
/// Environment variable with the number of retries after the first attempt.
pub const ENV_MAX_RETRIES: &str = "TECHPACK_OPENAI_MAX_RETRIES";
/// Environment variable with the maximum number of requests in flight at once in a process.
pub const ENV_CONCURRENCY: &str = "TECHPACK_OPENAI_CONCURRENCY";
/// Environment variable with the most requests a process starts per minute (unset: no limit).
pub const ENV_REQUESTS_PER_MINUTE: &str = "TECHPACK_OPENAI_REQUESTS_PER_MINUTE";
/// Environment variable with the overall deadline of one step, retries included, in seconds.
pub const ENV_DEADLINE_SECS: &str = "TECHPACK_OPENAI_DEADLINE_SECS";
/// Environment variable with the longest `Retry-After` waited out, in seconds.
pub const ENV_MAX_RETRY_AFTER_SECS: &str = "TECHPACK_OPENAI_MAX_RETRY_AFTER_SECS";
/// Environment variable with Azure's `api-version`: set, the base URL is an Azure resource and
/// the model names are its deployments.
pub const ENV_API_VERSION: &str = "TECHPACK_OPENAI_API_VERSION";
/// Environment variable choosing the key's header: `bearer`, `api-key` (Azure) or `auto`.
pub const ENV_AUTH: &str = "TECHPACK_OPENAI_AUTH";
/// Environment variable naming a separate endpoint for the images API.
pub const ENV_IMAGES_BASE_URL: &str = "TECHPACK_OPENAI_IMAGES_BASE_URL";
/// Environment variable holding the key of the images endpoint (default: the main key).
pub const ENV_IMAGES_API_KEY: &str = "TECHPACK_OPENAI_IMAGES_API_KEY";

/// The public OpenAI endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// A vision model that supports strict JSON-schema answers and is cheap enough per photo.
pub const DEFAULT_VISION_MODEL: &str = "gpt-4.1-mini";
/// The image model behind `/images/edits`.
pub const DEFAULT_IMAGE_MODEL: &str = "gpt-image-1";
/// The default image size: of the sizes the model accepts, the one nearest the shape of what
/// is sent, which is padded to exactly that shape (so a tall product gets a tall drawing that
/// lines up with the photo).
pub const DEFAULT_IMAGE_SIZE: &str = "aspect";

/// Why the provider's settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenAiConfigError {
    /// No API key was configured for an endpoint that needs one.
    #[error(
        "no OpenAI API key: set {ENV_API_KEY_FALLBACK} (or {ENV_API_KEY}); a self-hosted server (Ollama, vLLM) needs none"
    )]
    MissingApiKey,
    /// An environment variable holds a value that cannot be used.
    #[error("{name}={value:?} is not valid: {reason}")]
    InvalidVar {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid OpenAI setting `{field}`: {reason}")]
    Invalid {
        /// The field of [`OpenAiConfig`].
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built (e.g. no TLS backend).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// How the API key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthHeader {
    /// `api-key` for Azure hosts (`*.openai.azure.com`, `*.cognitiveservices.azure.com`),
    /// `Authorization: Bearer` elsewhere.
    #[default]
    Auto,
    /// `Authorization: Bearer KEY` (OpenAI, vLLM, Ollama, Azure with an Entra token).
    Bearer,
    /// `api-key: KEY` (Azure OpenAI keys).
    ApiKey,
}

impl std::str::FromStr for AuthHeader {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(AuthHeader::Auto),
            "bearer" => Ok(AuthHeader::Bearer),
            "api-key" | "api_key" => Ok(AuthHeader::ApiKey),
            _ => Err("expected bearer, api-key or auto".into()),
        }
    }
}

/// Settings of [`super::OpenAiProvider`].
///
/// `Debug` prints the API keys as `[REDACTED]`, so the config can be logged.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The API root, ending before `/chat/completions`: `https://api.openai.com/v1`, an Azure
    /// `https://NAME.openai.azure.com/openai/v1`, or (with [`OpenAiConfig::api_version`]) the
    /// Azure resource `https://NAME.openai.azure.com`. A query string is kept after the path.
    pub base_url: String,
    /// The key; empty for a server that needs none (a local Ollama or vLLM).
    pub api_key: SecretString,
    /// How the key is sent.
    pub auth: AuthHeader,
    /// Azure's `api-version` query parameter. Set, requests go to
    /// `{base_url}/openai/deployments/{model}/…?api-version=…`, the model names being the
    /// deployments' names.
    pub api_version: Option<String>,
    /// A separate endpoint for `/images/edits` (default: [`OpenAiConfig::base_url`]), so that
    /// analyses and images can be served by different servers.
    pub images_base_url: Option<String>,
    /// The key of [`OpenAiConfig::images_base_url`] (default: [`OpenAiConfig::api_key`]).
    pub images_api_key: Option<SecretString>,
    /// Chat model with image input and structured outputs, for analyses.
    pub vision_model: String,
    /// Image model for `/images/edits`, for close-ups and sketches.
    pub image_model: String,
    /// `size` of generated images: `aspect` (the default: the accepted size nearest the shape
    /// of the crop, which is padded to it), one of the model's sizes (gpt-image-1:
    /// `1024x1024`, `1024x1536`, `1536x1024`), or `auto` (the model decides).
    pub image_size: String,
    /// Limit for one HTTP request, from sending to the last byte of the answer.
    pub timeout: Duration,
    /// Retries after the first attempt on 408, 409, 429, 5xx, timeouts and connection errors:
    /// a step makes at most `max_retries + 1` calls.
    pub max_retries: u32,
    /// Overall limit of one step (one analysis, close-up or sketch), retries and waits
    /// included; waiting for a slot under the process' limits is not counted.
    pub deadline: Duration,
    /// Backoff before the first retry; doubles on every retry (with full jitter).
    pub backoff_base: Duration,
    /// Upper bound of one backoff.
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this is not waited out: the step fails with
    /// [`crate::GenerateError::RetryLater`], which says when to try again.
    pub max_retry_after: Duration,
    /// Requests in flight at once, across every job of the process (see
    /// [`super::RequestLimiter`]).
    pub concurrency: usize,
    /// Requests started per minute by the process, when limited.
    pub requests_per_minute: Option<u32>,
    /// Margin added around a close-up's region before it is sent, as a share of the region's
    /// size, so that the model sees the detail's surroundings.
    pub closeup_margin: f64,
    /// Credits charged per successful operation.
    pub credits: CreditCosts,
}

impl OpenAiConfig {
    /// Default settings with the given API key (empty: none).
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: SecretString::from(api_key.into()),
            auth: AuthHeader::Auto,
            api_version: None,
            images_base_url: None,
            images_api_key: None,
            vision_model: DEFAULT_VISION_MODEL.to_owned(),
            image_model: DEFAULT_IMAGE_MODEL.to_owned(),
            image_size: DEFAULT_IMAGE_SIZE.to_owned(),
            // Image edits routinely take 30–60 s on the public API.
            timeout: Duration::from_secs(120),
            max_retries: 3,
            // Two slow image edits and their backoff, not four: a hanging provider costs one
            // step five minutes at most.
            deadline: Duration::from_secs(300),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            concurrency: 4,
            requests_per_minute: None,
            closeup_margin: 0.15,
            credits: CreditCosts::default(),
        }
    }

    /// Settings from the process environment: see [`OpenAiConfig::from_lookup`].
    pub fn from_env() -> Result<Self, OpenAiConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Settings from a variable lookup (the environment, a config file's map, a test's map).
    ///
    /// Reads [`ENV_API_KEY`] or [`ENV_API_KEY_FALLBACK`] (required by OpenAI and Azure, not by
    /// other servers), [`ENV_BASE_URL`], [`ENV_AUTH`], [`ENV_API_VERSION`],
    /// [`ENV_IMAGES_BASE_URL`], [`ENV_IMAGES_API_KEY`], [`ENV_VISION_MODEL`],
    /// [`ENV_IMAGE_MODEL`], [`ENV_IMAGE_SIZE`], [`ENV_TIMEOUT_SECS`], [`ENV_MAX_RETRIES`],
    /// [`ENV_DEADLINE_SECS`], [`ENV_MAX_RETRY_AFTER_SECS`], [`ENV_CONCURRENCY`] and
    /// [`ENV_REQUESTS_PER_MINUTE`]; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, OpenAiConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let key = get(ENV_API_KEY)
            .or_else(|| get(ENV_API_KEY_FALLBACK))
            .unwrap_or_default();
        let mut config = Self::new(key);
        if let Some(url) = get(ENV_BASE_URL) {
            config.base_url = url;
        }
        if let Some(value) = get(ENV_AUTH) {
            config.auth = value
                .parse()
                .map_err(|reason: String| invalid_var(ENV_AUTH, &value, &reason))?;
        }
        config.api_version = get(ENV_API_VERSION);
        config.images_base_url = get(ENV_IMAGES_BASE_URL);
        config.images_api_key = get(ENV_IMAGES_API_KEY).map(SecretString::from);
        if let Some(model) = get(ENV_VISION_MODEL) {
            config.vision_model = model;
        }
        if let Some(model) = get(ENV_IMAGE_MODEL) {
            config.image_model = model;
        }
        if let Some(size) = get(ENV_IMAGE_SIZE) {
            config.image_size = size;
        }
        if let Some(value) = get(ENV_TIMEOUT_SECS) {
            config.timeout = positive_secs(ENV_TIMEOUT_SECS, &value)?;
        }
        if let Some(value) = get(ENV_DEADLINE_SECS) {
            config.deadline = positive_secs(ENV_DEADLINE_SECS, &value)?;
        }
        if let Some(value) = get(ENV_MAX_RETRY_AFTER_SECS) {
            let secs: f64 = parse_var(ENV_MAX_RETRY_AFTER_SECS, &value)?;
            config.max_retry_after = Duration::try_from_secs_f64(secs).map_err(|_| {
                invalid_var(
                    ENV_MAX_RETRY_AFTER_SECS,
                    &value,
                    "expected seconds, 0 or more",
                )
            })?;
        }
        if let Some(value) = get(ENV_MAX_RETRIES) {
            config.max_retries = parse_var(ENV_MAX_RETRIES, &value)?;
        }
        if let Some(value) = get(ENV_CONCURRENCY) {
            config.concurrency = parse_var(ENV_CONCURRENCY, &value)?;
        }
        if let Some(value) = get(ENV_REQUESTS_PER_MINUTE) {
            config.requests_per_minute = Some(parse_var(ENV_REQUESTS_PER_MINUTE, &value)?);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings; [`super::OpenAiProvider::new`] calls it.
    pub fn validate(&self) -> Result<(), OpenAiConfigError> {
        let chat = self.chat_endpoint()?;
        let images = self.images_endpoint()?;
        for endpoint in [&chat, &images] {
            if endpoint.needs_key() && endpoint.key.is_none() {
                return Err(OpenAiConfigError::MissingApiKey);
            }
        }
        for (field, value) in [
            ("vision_model", &self.vision_model),
            ("image_model", &self.image_model),
        ] {
            if value.trim().is_empty() {
                return Err(OpenAiConfigError::Invalid {
                    field,
                    reason: "must not be empty".into(),
                });
            }
        }
        if let Some(version) = &self.api_version
            && version.trim().is_empty()
        {
            return Err(OpenAiConfigError::Invalid {
                field: "api_version",
                reason: "must not be empty".into(),
            });
        }
        super::images::check_image_size(&self.image_model, &self.image_size).map_err(|reason| {
            OpenAiConfigError::Invalid {
                field: "image_size",
                reason,
            }
        })?;
        if self.timeout.is_zero() || self.deadline.is_zero() {
            return Err(OpenAiConfigError::Invalid {
                field: if self.timeout.is_zero() {
                    "timeout"
                } else {
                    "deadline"
                },
                reason: "must be positive".into(),
            });
        }
        if self.concurrency == 0 {
            return Err(OpenAiConfigError::Invalid {
                field: "concurrency",
                reason: "must be at least 1".into(),
            });
        }
        if self.requests_per_minute == Some(0) {
            return Err(OpenAiConfigError::Invalid {
                field: "requests_per_minute",
                reason: "must be at least 1 (leave it unset for no limit)".into(),
            });
        }
        if self.backoff_base > self.backoff_max {
            return Err(OpenAiConfigError::Invalid {
                field: "backoff_base",
                reason: "must not exceed backoff_max".into(),
            });
        }
        if !(0.0..=2.0).contains(&self.closeup_margin) {
            return Err(OpenAiConfigError::Invalid {
                field: "closeup_margin",
                reason: "must be in 0..=2".into(),
            });
        }
        let CreditCosts {
            analysis,
            closeup,
            sketch,
        } = self.credits;
        if analysis < 0 || closeup < 0 || sketch < 0 {
            return Err(OpenAiConfigError::Invalid {
                field: "credits",
                reason: "costs must not be negative".into(),
            });
        }
        Ok(())
    }

    /// Where analyses are sent.
    pub(crate) fn chat_endpoint(&self) -> Result<Endpoint, OpenAiConfigError> {
        Endpoint::new(
            "base_url",
            &self.base_url,
            non_empty(&self.api_key),
            self.auth,
            self.api_version.clone(),
        )
    }

    /// Where images are sent: the images endpoint when there is one, else the chat endpoint.
    pub(crate) fn images_endpoint(&self) -> Result<Endpoint, OpenAiConfigError> {
        match &self.images_base_url {
            None => self.chat_endpoint(),
            Some(url) => Endpoint::new(
                "images_base_url",
                url,
                self.images_api_key
                    .as_ref()
                    .and_then(non_empty)
                    .or_else(|| non_empty(&self.api_key)),
                self.auth,
                self.api_version.clone(),
            ),
        }
    }

    /// `host[:port]` of the base URL (and of the images URL when it differs), for the
    /// fingerprint.
    pub(crate) fn host(&self) -> String {
        let host = |url: &str| match Url::parse(url) {
            Ok(url) => match (url.host_str(), url.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_owned(),
                (None, _) => url.to_string(),
            },
            Err(_) => url.to_owned(),
        };
        let chat = host(&self.base_url);
        match &self.images_base_url {
            Some(images) if host(images) != chat => format!("{chat}+{}", host(images)),
            _ => chat,
        }
    }

    /// Every secret of these settings, for redaction: the keys and any password in a URL.
    pub(crate) fn secrets(&self) -> Vec<SecretString> {
        let mut secrets: Vec<SecretString> = [Some(&self.api_key), self.images_api_key.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(non_empty)
            .collect();
        for url in [Some(&self.base_url), self.images_base_url.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Ok(url) = Url::parse(url)
                && let Some(password) = url.password()
                && !password.is_empty()
            {
                secrets.push(SecretString::from(password.to_owned()));
            }
        }
        secrets
    }
}

/// One API root with its key: builds the URL of each operation the way the server expects.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    base: Url,
    pub(crate) key: Option<SecretString>,
    auth: AuthHeader,
    api_version: Option<String>,
}

impl Endpoint {
    fn new(
        field: &'static str,
        url: &str,
        key: Option<SecretString>,
        auth: AuthHeader,
        api_version: Option<String>,
    ) -> Result<Self, OpenAiConfigError> {
        let base = Url::parse(url.trim()).map_err(|e| OpenAiConfigError::Invalid {
            field,
            reason: format!("{url:?} is not a URL: {e}"),
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(OpenAiConfigError::Invalid {
                field,
                reason: format!("{url:?} is not an http(s) URL with a host"),
            });
        }
        // An `api-version` pasted into the URL counts as the setting.
        let in_query = base
            .query_pairs()
            .find(|(name, _)| name == "api-version")
            .map(|(_, value)| value.into_owned());
        Ok(Self {
            api_version: api_version.or(in_query),
            base,
            key,
            auth,
        })
    }

    fn is_azure(&self) -> bool {
        self.base.host_str().is_some_and(|host| {
            host.ends_with(".openai.azure.com") || host.ends_with(".cognitiveservices.azure.com")
        })
    }

    /// OpenAI and Azure refuse every request without a key; other servers may need none.
    fn needs_key(&self) -> bool {
        self.is_azure() || self.base.host_str() == Some("api.openai.com")
    }

    /// The header the key goes in.
    pub(crate) fn auth(&self) -> AuthHeader {
        match self.auth {
            AuthHeader::Auto if self.is_azure() => AuthHeader::ApiKey,
            AuthHeader::Auto => AuthHeader::Bearer,
            other => other,
        }
    }

    /// The URL of `operation` (`chat/completions`, `images/edits`) for `model`: appended to
    /// the base's path, the base's query kept after it; with an `api-version`, Azure's
    /// deployment URL (`/openai/deployments/{model}/…?api-version=…`) unless the base already
    /// names a deployment or is the `/openai/v1` API.
    pub(crate) fn url(&self, model: &str, operation: &str) -> Url {
        let mut url = self.base.clone();
        let path = url.path().trim_end_matches('/').to_owned();
        let deployment_style = self.api_version.is_some()
            && !path.contains("/openai/deployments/")
            && !path.ends_with("/openai/v1");
        let path = if deployment_style {
            let root = path.strip_suffix("/openai").unwrap_or(&path);
            format!("{root}/openai/deployments/{model}/{operation}")
        } else {
            format!("{path}/{operation}")
        };
        url.set_path(&path);
        let pairs: Vec<(String, String)> = self
            .base
            .query_pairs()
            .filter(|(name, _)| name != "api-version")
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        let api_version = self.api_version.as_ref();
        if pairs.is_empty() && api_version.is_none() {
            url.set_query(None);
        } else {
            let mut query = url.query_pairs_mut();
            query.clear();
            for (name, value) in &pairs {
                query.append_pair(name, value);
            }
            if let Some(version) = api_version {
                query.append_pair("api-version", version);
            }
        }
        // The URL is shown in error messages: no credentials in it (the key goes in a header).
        let _ = url.set_password(None);
        let _ = url.set_username("");
        url
    }
}

fn non_empty(secret: &SecretString) -> Option<SecretString> {
    (!secret.expose_secret().trim().is_empty()).then(|| secret.clone())
}

fn positive_secs(name: &'static str, value: &str) -> Result<Duration, OpenAiConfigError> {
    let secs: f64 = parse_var(name, value)?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| invalid_var(name, value, "expected a positive number of seconds"))
}

fn parse_var<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, OpenAiConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| invalid_var(name, value, &e.to_string()))
}

fn invalid_var(name: &'static str, value: &str, reason: &str) -> OpenAiConfigError {
    OpenAiConfigError::InvalidVar {
        name,
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn missing_key_names_the_variable_to_set() {
        let err = OpenAiConfig::from_lookup(lookup(&[])).unwrap_err();
        assert_eq!(err, OpenAiConfigError::MissingApiKey);
        assert!(err.to_string().contains("OPENAI_API_KEY"));
        let blank = OpenAiConfig::from_lookup(lookup(&[("OPENAI_API_KEY", "  ")])).unwrap_err();
        assert_eq!(blank, OpenAiConfigError::MissingApiKey);
    }

    #[test]
    fn reads_every_variable_and_prefers_the_project_key() {
        let config = OpenAiConfig::from_lookup(lookup(&[
            ("OPENAI_API_KEY", "sk-general"),
            ("TECHPACK_OPENAI_API_KEY", "sk-project"),
            ("TECHPACK_OPENAI_BASE_URL", "http://localhost:11434/v1/"),
            ("TECHPACK_OPENAI_VISION_MODEL", "llava"),
            ("TECHPACK_OPENAI_IMAGE_MODEL", "dall-e-2"),
            ("TECHPACK_OPENAI_IMAGE_SIZE", "512x512"),
            ("TECHPACK_OPENAI_DEADLINE_SECS", "90"),
            ("TECHPACK_OPENAI_MAX_RETRY_AFTER_SECS", "600"),
            ("TECHPACK_OPENAI_REQUESTS_PER_MINUTE", "30"),
            ("TECHPACK_OPENAI_TIMEOUT_SECS", "2.5"),
            ("TECHPACK_OPENAI_MAX_RETRIES", "7"),
            ("TECHPACK_OPENAI_CONCURRENCY", "3"),
        ]))
        .unwrap();
        assert_eq!(config.api_key.expose_secret(), "sk-project");
        assert_eq!(
            config
                .chat_endpoint()
                .unwrap()
                .url("llava", "chat/completions")
                .as_str(),
            "http://localhost:11434/v1/chat/completions"
        );
        assert_eq!(config.host(), "localhost:11434");
        assert_eq!(config.vision_model, "llava");
        assert_eq!(config.image_model, "dall-e-2");
        assert_eq!(config.image_size, "512x512");
        assert_eq!(config.timeout, Duration::from_millis(2500));
        assert_eq!(config.max_retries, 7);
        assert_eq!(config.concurrency, 3);
        assert_eq!(config.deadline, Duration::from_secs(90));
        assert_eq!(config.max_retry_after, Duration::from_secs(600));
        assert_eq!(config.requests_per_minute, Some(30));
    }

    #[test]
    fn a_self_hosted_server_needs_no_key_but_openai_and_azure_do() {
        let config = OpenAiConfig::from_lookup(lookup(&[(
            "TECHPACK_OPENAI_BASE_URL",
            "http://localhost:11434/v1",
        )]))
        .unwrap();
        assert!(config.chat_endpoint().unwrap().key.is_none());
        let err = OpenAiConfig::from_lookup(lookup(&[(
            "TECHPACK_OPENAI_BASE_URL",
            "https://contoso.openai.azure.com/openai/v1",
        )]))
        .unwrap_err();
        assert_eq!(err, OpenAiConfigError::MissingApiKey);
    }

    fn url(vars: &[(&str, &str)], model: &str, operation: &str) -> String {
        let mut all = vec![("OPENAI_API_KEY", "k")];
        all.extend_from_slice(vars);
        let config = OpenAiConfig::from_lookup(lookup(&all)).unwrap();
        let endpoint = if operation.starts_with("images") {
            config.images_endpoint()
        } else {
            config.chat_endpoint()
        };
        endpoint.unwrap().url(model, operation).to_string()
    }

    #[test]
    fn azure_urls_in_both_styles() {
        let resource = (
            "TECHPACK_OPENAI_BASE_URL",
            "https://contoso.openai.azure.com/",
        );
        let version = ("TECHPACK_OPENAI_API_VERSION", "2025-04-01-preview");
        assert_eq!(
            url(&[resource, version], "vision-dep", "chat/completions"),
            "https://contoso.openai.azure.com/openai/deployments/vision-dep/chat/completions?api-version=2025-04-01-preview"
        );
        assert_eq!(
            url(&[resource, version], "image-dep", "images/edits"),
            "https://contoso.openai.azure.com/openai/deployments/image-dep/images/edits?api-version=2025-04-01-preview"
        );
        // A resource URL given with `/openai`, and an api-version pasted into the URL: the path
        // goes before the query.
        assert_eq!(
            url(
                &[(
                    "TECHPACK_OPENAI_BASE_URL",
                    "https://contoso.openai.azure.com/openai?api-version=2024-10-21"
                )],
                "dep",
                "chat/completions"
            ),
            "https://contoso.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2024-10-21"
        );
        // The v1 API takes model (deployment) names in the body and needs no api-version.
        assert_eq!(
            url(
                &[(
                    "TECHPACK_OPENAI_BASE_URL",
                    "https://contoso.openai.azure.com/openai/v1"
                )],
                "dep",
                "chat/completions"
            ),
            "https://contoso.openai.azure.com/openai/v1/chat/completions"
        );
        let config =
            OpenAiConfig::from_lookup(lookup(&[("OPENAI_API_KEY", "k"), resource, version]))
                .unwrap();
        assert_eq!(config.chat_endpoint().unwrap().auth(), AuthHeader::ApiKey);
        let openai = OpenAiConfig::new("k");
        assert_eq!(openai.chat_endpoint().unwrap().auth(), AuthHeader::Bearer);
        let forced = OpenAiConfig::from_lookup(lookup(&[
            ("OPENAI_API_KEY", "k"),
            resource,
            ("TECHPACK_OPENAI_AUTH", "bearer"),
        ]))
        .unwrap();
        assert_eq!(forced.chat_endpoint().unwrap().auth(), AuthHeader::Bearer);
    }

    #[test]
    fn images_can_have_their_own_endpoint_and_key() {
        let config = OpenAiConfig::from_lookup(lookup(&[
            ("TECHPACK_OPENAI_BASE_URL", "http://vision:8000/v1"),
            (
                "TECHPACK_OPENAI_IMAGES_BASE_URL",
                "https://api.openai.com/v1",
            ),
            ("TECHPACK_OPENAI_IMAGES_API_KEY", "sk-images"),
        ]))
        .unwrap();
        let images = config.images_endpoint().unwrap();
        assert_eq!(
            images.url("gpt-image-1", "images/edits").as_str(),
            "https://api.openai.com/v1/images/edits"
        );
        assert_eq!(images.key.unwrap().expose_secret(), "sk-images");
        assert!(config.chat_endpoint().unwrap().key.is_none());
        assert_eq!(config.host(), "vision:8000+api.openai.com");
        // The images API of OpenAI needs a key even when the vision server does not.
        let err = OpenAiConfig::from_lookup(lookup(&[
            ("TECHPACK_OPENAI_BASE_URL", "http://vision:8000/v1"),
            (
                "TECHPACK_OPENAI_IMAGES_BASE_URL",
                "https://api.openai.com/v1",
            ),
        ]))
        .unwrap_err();
        assert_eq!(err, OpenAiConfigError::MissingApiKey);
    }

    #[test]
    fn image_sizes_are_checked_against_the_model() {
        let size = |model: &str, size: &str| {
            OpenAiConfig::from_lookup(lookup(&[
                ("OPENAI_API_KEY", "k"),
                ("TECHPACK_OPENAI_IMAGE_MODEL", model),
                ("TECHPACK_OPENAI_IMAGE_SIZE", size),
            ]))
        };
        for ok in ["1024x1024", "1024x1536", "1536x1024", "auto", "aspect"] {
            assert!(size("gpt-image-1", ok).is_ok(), "{ok}");
        }
        let err = size("gpt-image-1", "512x512").unwrap_err();
        assert!(
            err.to_string().contains("1024x1536") && err.to_string().contains("gpt-image-1"),
            "{err}"
        );
        assert!(size("dall-e-2", "512x512").is_ok());
        assert!(size("dall-e-2", "1024x1536").is_err());
        assert!(size("dall-e-2", "auto").is_err(), "DALL·E 2 has no auto");
        // A model we do not know may take any size.
        assert!(size("flux-dev", "768x1344").is_ok());
        assert!(size("flux-dev", "big").is_err());
    }

    #[test]
    fn defaults_point_at_openai() {
        let config = OpenAiConfig::from_lookup(lookup(&[("OPENAI_API_KEY", "sk-x")])).unwrap();
        assert_eq!(config.base_url, DEFAULT_BASE_URL);
        assert_eq!(config.host(), "api.openai.com");
        assert_eq!(config.vision_model, DEFAULT_VISION_MODEL);
        assert_eq!(config.image_model, DEFAULT_IMAGE_MODEL);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("TECHPACK_OPENAI_TIMEOUT_SECS", "soon"),
            ("TECHPACK_OPENAI_TIMEOUT_SECS", "0"),
            ("TECHPACK_OPENAI_MAX_RETRIES", "-1"),
            ("TECHPACK_OPENAI_CONCURRENCY", "many"),
        ] {
            let err = OpenAiConfig::from_lookup(lookup(&[("OPENAI_API_KEY", "k"), (name, value)]))
                .unwrap_err();
            assert!(
                matches!(&err, OpenAiConfigError::InvalidVar { name: n, .. } if *n == name),
                "{err}"
            );
        }
        let err = OpenAiConfig::from_lookup(lookup(&[
            ("OPENAI_API_KEY", "k"),
            ("TECHPACK_OPENAI_CONCURRENCY", "0"),
        ]))
        .unwrap_err();
        assert!(matches!(
            err,
            OpenAiConfigError::Invalid {
                field: "concurrency",
                ..
            }
        ));
        let err = OpenAiConfig::from_lookup(lookup(&[
            ("OPENAI_API_KEY", "k"),
            ("TECHPACK_OPENAI_BASE_URL", "ftp://x"),
        ]))
        .unwrap_err();
        assert!(matches!(
            err,
            OpenAiConfigError::Invalid {
                field: "base_url",
                ..
            }
        ));
    }

    #[test]
    fn debug_output_redacts_the_key() {
        let config = OpenAiConfig::new("sk-very-secret");
        let debug = format!("{config:?}");
        assert!(!debug.contains("sk-very-secret"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    }
}
