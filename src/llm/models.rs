//! The configured providers and the models each role runs on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ConfigError, ModelRef, ModelSpec, ProviderKind};
use crate::llm::anthropic::AnthropicProvider;
use crate::llm::gemini::GeminiProvider;
use crate::llm::openai::OpenAiProvider;
use crate::llm::{Effort, Provider, effort};

/// A model ready to call: its provider, its name, and what it supports.
#[derive(Debug, Clone)]
pub struct ModelHandle {
    /// The API it runs on.
    pub provider: Arc<dyn Provider>,
    /// `provider:model`.
    pub model: ModelRef,
    /// Its effort levels, context window and prices.
    pub spec: ModelSpec,
}

impl ModelHandle {
    /// `requested` clamped to the levels this model supports.
    pub fn clamp_effort(&self, requested: Effort) -> Effort {
        effort::clamp(requested, &self.spec.efforts)
    }

    /// The cost in US dollars of `usage` on this model.
    pub fn cost(&self, usage: crate::llm::Usage) -> f64 {
        (usage.input_tokens as f64 * self.spec.input_price
            + usage.output_tokens as f64 * self.spec.output_price)
            / 1_000_000.0
    }
}

/// The orchestrator's and the workers' models, built from the config.
#[derive(Debug, Clone)]
pub struct Models {
    /// The orchestrator's model.
    pub orchestrator: ModelHandle,
    /// The workers' model.
    pub worker: ModelHandle,
}

impl Models {
    /// Builds one client per provider the roles use.
    pub fn from_config(config: &Config) -> Result<Models, ConfigError> {
        let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        let mut handle = |model: ModelRef| -> Result<ModelHandle, ConfigError> {
            let provider = match providers.get(&model.provider) {
                Some(provider) => provider.clone(),
                None => {
                    let provider = build_provider(config, &model.provider)?;
                    providers.insert(model.provider.clone(), provider.clone());
                    provider
                }
            };
            Ok(ModelHandle {
                provider,
                spec: config.models.spec(&model),
                model,
            })
        };
        let orchestrator = handle(config.models.orchestrator_model()?)?;
        let worker = handle(config.models.worker_model()?)?;
        Ok(Models {
            orchestrator,
            worker,
        })
    }
}

/// One provider client from its `[providers.NAME]` section.
pub fn build_provider(config: &Config, name: &str) -> Result<Arc<dyn Provider>, ConfigError> {
    let section = config.providers.get(name).ok_or_else(|| {
        ConfigError::Invalid(format!(
            "a model uses provider {name:?}, but there is no [providers.{name}] section"
        ))
    })?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(section.timeout_secs))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ConfigError::Invalid(format!("cannot build an HTTP client: {e}")))?;
    let key = section.api_key();
    let base_url = section.base_url.trim_end_matches('/').to_owned();
    Ok(match section.kind {
        ProviderKind::Openai => Arc::new(OpenAiProvider::new(name, base_url, key, http)),
        ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(name, base_url, key, http)),
        ProviderKind::Gemini => Arc::new(GeminiProvider::new(name, base_url, key, http)),
    })
}
