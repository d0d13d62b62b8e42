//! Choosing a provider by name, as the command line and configuration do.

use std::str::FromStr;

use techpack_model::{ClassifiedError, ErrorKind};

use crate::openai::OpenAiConfigError;

/// The providers there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProviderKind {
    /// Offline image processing (the default).
    #[default]
    Local,
    /// An OpenAI-compatible endpoint configured from the environment.
    OpenAi,
    /// Analyses from an OpenAI-compatible vision model, close-ups and sketches made locally
    /// (for servers without an images API: Ollama, vLLM).
    Hybrid,
}

/// A provider name that is not one of ours, or a provider that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    /// Not a provider name.
    #[error("unknown provider '{0}': use local, openai or hybrid")]
    Unknown(String),
    /// The OpenAI provider's configuration is missing or wrong.
    #[error(transparent)]
    OpenAi(#[from] OpenAiConfigError),
}

impl ProviderSetupError {
    /// The kind of failure: an unknown name is a bad request; a provider that cannot be set
    /// up needs its settings fixed.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProviderSetupError::Unknown(_) => ErrorKind::InvalidInput,
            ProviderSetupError::OpenAi(_) => ErrorKind::Misconfigured,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderSetupError::Unknown(_) => "invalid_input",
            ProviderSetupError::OpenAi(_) => "config_error",
        }
    }
}

impl ClassifiedError for ProviderSetupError {
    fn kind(&self) -> ErrorKind {
        ProviderSetupError::kind(self)
    }

    fn code(&self) -> &'static str {
        ProviderSetupError::code(self)
    }
}

impl ProviderKind {
    /// Every provider, in the order help texts list them.
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::Local,
        ProviderKind::OpenAi,
        ProviderKind::Hybrid,
    ];

    /// Whether it calls an OpenAI-compatible endpoint (and so needs its settings).
    pub fn uses_openai(self) -> bool {
        matches!(self, ProviderKind::OpenAi | ProviderKind::Hybrid)
    }

    /// The provider's name, as `--provider` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Hybrid => "hybrid",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = ProviderSetupError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(ProviderKind::Local),
            "openai" => Ok(ProviderKind::OpenAi),
            "hybrid" => Ok(ProviderKind::Hybrid),
            other => Err(ProviderSetupError::Unknown(other.to_owned())),
        }
    }
}
