//! Choosing a provider by name, as the command line and configuration do.

use std::str::FromStr;
use std::sync::Arc;

use crate::Provider;
use crate::local::LocalProvider;
use crate::openai::{OpenAiConfigError, OpenAiProvider};

/// The providers there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderKind {
    /// Offline image processing (the default).
    #[default]
    Local,
    /// An OpenAI-compatible endpoint configured from the environment.
    OpenAi,
}

/// A provider name that is not one of ours, or a provider that cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ProviderSetupError {
    /// Not a provider name.
    #[error("unknown provider '{0}': use local or openai")]
    Unknown(String),
    /// The OpenAI provider's configuration is missing or wrong.
    #[error(transparent)]
    OpenAi(#[from] OpenAiConfigError),
}

impl FromStr for ProviderKind {
    type Err = ProviderSetupError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(ProviderKind::Local),
            "openai" => Ok(ProviderKind::OpenAi),
            other => Err(ProviderSetupError::Unknown(other.to_owned())),
        }
    }
}

/// Builds the named provider with its default options (OpenAI: from the environment).
pub fn build_provider(kind: ProviderKind) -> Result<Arc<dyn Provider>, ProviderSetupError> {
    Ok(match kind {
        ProviderKind::Local => Arc::new(LocalProvider::default()),
        ProviderKind::OpenAi => Arc::new(OpenAiProvider::from_env()?),
    })
}
