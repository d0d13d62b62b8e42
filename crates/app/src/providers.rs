//! The one provider factory: makes the provider a request or a job names, configured from the
//! settings, once per process. Every job a process runs shares that instance, so a provider's
//! own limits (the OpenAI provider's requests in flight) hold per process, not per job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use techpack_generate::local::LocalProvider;
use techpack_generate::openai::{OpenAiConfig, OpenAiProvider};
use techpack_generate::{Provider, ProviderKind, ProviderSetupError};
use techpack_pipeline::jobs::ProviderFactory;

use crate::error::AppResult;
use crate::settings::OpenAiSettings;

/// Makes and keeps the providers of this process.
pub struct Providers {
    openai: OpenAiSettings,
    made: Mutex<HashMap<ProviderKind, Arc<dyn Provider>>>,
}

impl Providers {
    /// A factory configured by `openai` (the OpenAI provider's settings).
    pub fn new(openai: OpenAiSettings) -> Self {
        Self {
            openai,
            made: Mutex::default(),
        }
    }

    /// The provider called `name` (`local`, `openai`), made on first use.
    pub fn get(&self, name: &str) -> AppResult<Arc<dyn Provider>> {
        let kind: ProviderKind = name.parse()?;
        let mut made = self
            .made
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(provider) = made.get(&kind) {
            return Ok(provider.clone());
        }
        let provider: Arc<dyn Provider> = match kind {
            ProviderKind::Local => Arc::new(LocalProvider::default()),
            ProviderKind::OpenAi => {
                let config = OpenAiConfig::from_lookup(|variable| self.openai.lookup(variable))
                    .map_err(ProviderSetupError::from)?;
                Arc::new(OpenAiProvider::new(config).map_err(ProviderSetupError::from)?)
            }
        };
        made.insert(kind, provider.clone());
        Ok(provider)
    }

    /// The factory a job runner calls with each job's provider name.
    pub fn factory(self: &Arc<Self>) -> ProviderFactory {
        let providers = self.clone();
        Arc::new(move |name: &str| providers.get(name).map_err(|error| error.to_string()))
    }
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let made = self
            .made
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f.debug_struct("Providers")
            .field("made", &made.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
