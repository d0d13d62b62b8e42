//! Settings of the `openai` provider: defaults in code, overridable from the environment.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::CreditCosts;

/// Environment variable naming the endpoint, e.g. `http://localhost:11434/v1` for Ollama.
pub const ENV_BASE_URL: &str = "TECHPACK_OPENAI_BASE_URL";
/// Environment variable holding the API key; wins over [`ENV_API_KEY_FALLBACK`].
pub const ENV_API_KEY: &str = "TECHPACK_OPENAI_API_KEY";
/// The API key variable every OpenAI tool reads.
pub const ENV_API_KEY_FALLBACK: &str = "OPENAI_API_KEY";
/// Environment variable naming the vision (chat) model used for analyses.
pub const ENV_VISION_MODEL: &str = "TECHPACK_OPENAI_VISION_MODEL";
/// Environment variable naming the image model used for close-ups and sketches.
pub const ENV_IMAGE_MODEL: &str = "TECHPACK_OPENAI_IMAGE_MODEL";
/// Environment variable with the size of generated images (`1024x1024`, `auto` …).
pub const ENV_IMAGE_SIZE: &str = "TECHPACK_OPENAI_IMAGE_SIZE";
/// Environment variable with the per-request timeout in seconds (fractions allowed).
pub const ENV_TIMEOUT_SECS: &str = "TECHPACK_OPENAI_TIMEOUT_SECS";
/// Environment variable with the number of retries after the first attempt.
pub const ENV_MAX_RETRIES: &str = "TECHPACK_OPENAI_MAX_RETRIES";
/// Environment variable with the maximum number of requests in flight at once.
pub const ENV_CONCURRENCY: &str = "TECHPACK_OPENAI_CONCURRENCY";

/// The public OpenAI endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// A vision model that supports strict JSON-schema answers and is cheap enough per photo.
pub const DEFAULT_VISION_MODEL: &str = "gpt-4.1-mini";
/// The image model behind `/images/edits`.
pub const DEFAULT_IMAGE_MODEL: &str = "gpt-image-1";
/// A size every OpenAI image model accepts.
pub const DEFAULT_IMAGE_SIZE: &str = "1024x1024";

/// Why the provider's settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenAiConfigError {
    /// No API key was configured.
    #[error("no OpenAI API key: set {ENV_API_KEY_FALLBACK} (or {ENV_API_KEY})")]
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

/// Settings of [`super::OpenAiProvider`].
///
/// `Debug` prints the API key as `[REDACTED]`, so the config can be logged.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// The API root, ending before `/chat/completions`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …`.
    pub api_key: SecretString,
    /// Chat model with image input and structured outputs, for analyses.
    pub vision_model: String,
    /// Image model for `/images/edits`, for close-ups and sketches.
    pub image_model: String,
    /// `size` of generated images: `1024x1024`, `1536x1024`, `1024x1536` or `auto`.
    pub image_size: String,
    /// Limit for one HTTP request, from sending to the last byte of the answer.
    pub timeout: Duration,
    /// Retries after the first attempt on 429, 5xx, timeouts and connection errors.
    pub max_retries: u32,
    /// Backoff before the first retry; doubles on every retry (with full jitter).
    pub backoff_base: Duration,
    /// Upper bound of one backoff.
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this is not waited out: the call fails with
    /// [`crate::GenerateError::RateLimited`] so the caller can reschedule the work.
    pub max_retry_after: Duration,
    /// Requests in flight at once, across all operations of one provider.
    pub concurrency: usize,
    /// Margin added around a close-up's region before it is sent, as a share of the region's
    /// size, so that the model sees the detail's surroundings.
    pub closeup_margin: f64,
    /// Credits charged per successful operation.
    pub credits: CreditCosts,
}

impl OpenAiConfig {
    /// Default settings with the given API key.
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key: SecretString::from(api_key.into()),
            vision_model: DEFAULT_VISION_MODEL.to_owned(),
            image_model: DEFAULT_IMAGE_MODEL.to_owned(),
            image_size: DEFAULT_IMAGE_SIZE.to_owned(),
            // Image edits routinely take 30–60 s on the public API.
            timeout: Duration::from_secs(120),
            max_retries: 3,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            concurrency: 4,
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
    /// Reads [`ENV_API_KEY`] or [`ENV_API_KEY_FALLBACK`] (required), [`ENV_BASE_URL`],
    /// [`ENV_VISION_MODEL`], [`ENV_IMAGE_MODEL`], [`ENV_IMAGE_SIZE`], [`ENV_TIMEOUT_SECS`],
    /// [`ENV_MAX_RETRIES`] and [`ENV_CONCURRENCY`]; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, OpenAiConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let key = get(ENV_API_KEY)
            .or_else(|| get(ENV_API_KEY_FALLBACK))
            .ok_or(OpenAiConfigError::MissingApiKey)?;
        let mut config = Self::new(key);
        if let Some(url) = get(ENV_BASE_URL) {
            config.base_url = url;
        }
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
            let secs: f64 = parse_var(ENV_TIMEOUT_SECS, &value)?;
            config.timeout = Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    invalid_var(
                        ENV_TIMEOUT_SECS,
                        &value,
                        "expected a positive number of seconds",
                    )
                })?;
        }
        if let Some(value) = get(ENV_MAX_RETRIES) {
            config.max_retries = parse_var(ENV_MAX_RETRIES, &value)?;
        }
        if let Some(value) = get(ENV_CONCURRENCY) {
            config.concurrency = parse_var(ENV_CONCURRENCY, &value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the settings; [`super::OpenAiProvider::new`] calls it.
    pub fn validate(&self) -> Result<(), OpenAiConfigError> {
        let url = reqwest::Url::parse(&self.base_url).map_err(|e| OpenAiConfigError::Invalid {
            field: "base_url",
            reason: format!("{:?} is not a URL: {e}", self.base_url),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(OpenAiConfigError::Invalid {
                field: "base_url",
                reason: format!("{:?} is not an http(s) URL with a host", self.base_url),
            });
        }
        if self.api_key.expose_secret().trim().is_empty() {
            return Err(OpenAiConfigError::MissingApiKey);
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
        if !valid_image_size(&self.image_size) {
            return Err(OpenAiConfigError::Invalid {
                field: "image_size",
                reason: format!(
                    "{:?}: expected WIDTHxHEIGHT (e.g. 1024x1024) or auto",
                    self.image_size
                ),
            });
        }
        if self.timeout.is_zero() {
            return Err(OpenAiConfigError::Invalid {
                field: "timeout",
                reason: "must be positive".into(),
            });
        }
        if self.concurrency == 0 {
            return Err(OpenAiConfigError::Invalid {
                field: "concurrency",
                reason: "must be at least 1".into(),
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

    /// The base URL without a trailing slash, ready to have `/chat/completions` appended.
    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }

    /// `host[:port]` of the base URL, for the fingerprint.
    pub(crate) fn host(&self) -> String {
        match reqwest::Url::parse(&self.base_url) {
            Ok(url) => match (url.host_str(), url.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_owned(),
                (None, _) => self.base_url.clone(),
            },
            Err(_) => self.base_url.clone(),
        }
    }
}

fn valid_image_size(size: &str) -> bool {
    if size == "auto" {
        return true;
    }
    match size.split_once('x') {
        Some((w, h)) => [w, h].iter().all(|n| n.parse::<u32>().is_ok_and(|n| n > 0)),
        None => false,
    }
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
            ("TECHPACK_OPENAI_TIMEOUT_SECS", "2.5"),
            ("TECHPACK_OPENAI_MAX_RETRIES", "7"),
            ("TECHPACK_OPENAI_CONCURRENCY", "3"),
        ]))
        .unwrap();
        assert_eq!(config.api_key.expose_secret(), "sk-project");
        assert_eq!(
            config.endpoint("/chat/completions"),
            "http://localhost:11434/v1/chat/completions"
        );
        assert_eq!(config.host(), "localhost:11434");
        assert_eq!(config.vision_model, "llava");
        assert_eq!(config.image_model, "dall-e-2");
        assert_eq!(config.image_size, "512x512");
        assert_eq!(config.timeout, Duration::from_millis(2500));
        assert_eq!(config.max_retries, 7);
        assert_eq!(config.concurrency, 3);
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
