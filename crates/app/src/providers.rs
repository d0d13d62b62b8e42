//! The one provider factory: makes the provider a request or a job names, configured from the
//! settings, once per process. Every job a process runs shares that instance, and every
//! provider that calls the OpenAI-compatible endpoint (`openai`, `hybrid`) shares one
//! [`RequestLimiter`], so the limits on requests in flight and per minute hold per process,
//! however many jobs a worker runs at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use techpack_generate::local::LocalProvider;
use techpack_generate::openai::{OpenAiConfig, OpenAiProvider, RequestLimiter};
use techpack_generate::{HybridProvider, Provider, ProviderKind, ProviderSetupError};
use techpack_pipeline::jobs::ProviderFactory;

use crate::error::AppResult;
use crate::settings::OpenAiSettings;

/// Makes and keeps the providers of this process.
pub struct Providers {
    openai: OpenAiSettings,
    made: Mutex<HashMap<ProviderKind, Arc<dyn Provider>>>,
    limiter: OnceLock<Arc<RequestLimiter>>,
}

impl Providers {
    /// A factory configured by `openai` (the OpenAI-compatible providers' settings).
    pub fn new(openai: OpenAiSettings) -> Self {
        Self {
            openai,
            made: Mutex::default(),
            limiter: OnceLock::new(),
        }
    }

    /// The provider called `name` (`local`, `openai`, `hybrid`), made on first use.
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
            ProviderKind::OpenAi => Arc::new(self.openai_provider()?),
            ProviderKind::Hybrid => Arc::new(HybridProvider::new(
                self.openai_provider()?,
                LocalProvider::default(),
            )),
        };
        made.insert(kind, provider.clone());
        Ok(provider)
    }

    /// The process' limits on requests to the OpenAI-compatible endpoint, from the settings
    /// (made on first use, then shared by every provider and job of the process).
    pub fn openai_limiter(&self) -> AppResult<Arc<RequestLimiter>> {
        let config = self.openai_config()?;
        Ok(self.limiter_for(&config))
    }

    /// The factory a job runner calls with each job's provider name.
    pub fn factory(self: &Arc<Self>) -> ProviderFactory {
        let providers = self.clone();
        Arc::new(move |name: &str| providers.get(name).map_err(|error| error.to_string()))
    }

    fn openai_config(&self) -> AppResult<OpenAiConfig> {
        Ok(
            OpenAiConfig::from_lookup(|variable| self.openai.lookup(variable))
                .map_err(ProviderSetupError::from)?,
        )
    }

    fn limiter_for(&self, config: &OpenAiConfig) -> Arc<RequestLimiter> {
        self.limiter
            .get_or_init(|| Arc::new(RequestLimiter::from_config(config)))
            .clone()
    }

    fn openai_provider(&self) -> AppResult<OpenAiProvider> {
        let config = self.openai_config()?;
        let limiter = self.limiter_for(&config);
        Ok(OpenAiProvider::with_limiter(config, limiter).map_err(ProviderSetupError::from)?)
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
            .field("limiter", &self.limiter.get())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    #[test]
    fn every_provider_of_a_process_shares_one_limiter() {
        let providers = Providers::new(OpenAiSettings {
            api_key: Some(SecretString::from("sk-test".to_owned())),
            concurrency: Some(3),
            requests_per_minute: Some(120),
            ..OpenAiSettings::default()
        });
        let limiter = providers.openai_limiter().unwrap();
        assert_eq!(limiter.in_flight_limit(), 3);
        assert_eq!(limiter.per_minute(), Some(120));
        providers.get("openai").unwrap();
        providers.get("hybrid").unwrap();
        assert!(Arc::ptr_eq(&limiter, &providers.openai_limiter().unwrap()));
        assert_eq!(
            limiter.describe(),
            "at most 3 request(s) in flight and 120 per minute"
        );
    }
}
