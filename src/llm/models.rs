//! The configured providers and the models each role runs on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::routing::{AgentRole, RouteLevel, RouteRequest};
use crate::config::{Config, ConfigError, ModelSpec, ModelsConfig, ProviderKind};
use crate::domain::ModelRef;
use crate::llm::anthropic::AnthropicProvider;
use crate::llm::gemini::GeminiProvider;
use crate::llm::openai::OpenAiProvider;
use crate::llm::{Effort, Provider, ProviderOptions, effort};
use crate::redact::Redactor;

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
}

/// The configured providers, and the models the roles run on by default.
#[derive(Debug, Clone)]
pub struct Models {
    /// The orchestrator's default model.
    pub orchestrator: ModelHandle,
    /// The workers' default model.
    pub worker: ModelHandle,
    /// One client per provider that a configured model uses.
    providers: BTreeMap<String, Arc<dyn Provider>>,
    /// `[models]`: routing and the catalog.
    config: ModelsConfig,
}

impl Models {
    /// Builds one client per provider the configured models use; a model
    /// routing can pick whose provider has no section is an error.
    pub fn from_config(config: &Config) -> Result<Models, ConfigError> {
        let mut providers: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        for model in config.models.configured()? {
            if !providers.contains_key(&model.provider)
                && config.providers.contains_key(&model.provider)
            {
                let provider = build_provider(config, &model.provider)?;
                providers.insert(model.provider, provider);
            }
        }
        Self::with_providers(config.models.clone(), providers)
    }

    /// Models over ready-made provider clients, keyed by provider name
    /// (benchmarks plug in providers that never touch the network).
    pub fn with_providers(
        config: ModelsConfig,
        providers: BTreeMap<String, Arc<dyn Provider>>,
    ) -> Result<Models, ConfigError> {
        // Every model routing can pick needs its provider, found now rather
        // than when a conversation first routes to it.
        for model in config.routed()? {
            handle_in(&providers, &config, &model)?;
        }
        let orchestrator = handle_in(&providers, &config, &config.orchestrator_model()?)?;
        let worker = handle_in(&providers, &config, &config.worker_model()?)?;
        Ok(Models {
            orchestrator,
            worker,
            providers,
            config,
        })
    }

    /// A handle for `model`, whose provider must be configured.
    pub fn handle(&self, model: &ModelRef) -> Result<ModelHandle, ConfigError> {
        handle_in(&self.providers, &self.config, model)
    }

    /// The model routing picks for `role` (see [`crate::config::routing`]).
    pub fn route(
        &self,
        role: AgentRole,
        request: RouteRequest<'_>,
    ) -> Result<(ModelHandle, RouteLevel), ConfigError> {
        let (model, level) = self.config.route(role, request)?;
        Ok((self.handle(&model)?, level))
    }

    /// Routing and the catalog.
    pub fn config(&self) -> &ModelsConfig {
        &self.config
    }

    /// The models `/model` can pick: configured ones whose provider is.
    pub fn selectable(&self) -> Vec<ModelRef> {
        self.config
            .configured()
            .unwrap_or_default()
            .into_iter()
            .filter(|model| self.providers.contains_key(&model.provider))
            .collect()
    }
}

fn handle_in(
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    config: &ModelsConfig,
    model: &ModelRef,
) -> Result<ModelHandle, ConfigError> {
    let provider = providers.get(&model.provider).ok_or_else(|| {
        ConfigError::Invalid(format!(
            "model {model} uses provider {:?}, but there is no [providers.{}] section",
            model.provider, model.provider
        ))
    })?;
    Ok(ModelHandle {
        provider: provider.clone(),
        spec: config.spec(model),
        model: model.clone(),
    })
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
    let options = ProviderOptions {
        key_env: section.api_key_env.clone(),
        idle_timeout: section.idle_timeout(),
        max_response_bytes: usize::try_from(section.max_response_bytes).unwrap_or(usize::MAX),
        // Every secret the config reaches, not only this provider's key:
        // an error body may quote anything the request or a proxy carried.
        redactor: Redactor::from_config(config),
    };
    Ok(match section.kind {
        ProviderKind::Openai => {
            Arc::new(OpenAiProvider::new(name, base_url, key, http).with_options(options))
        }
        ProviderKind::Anthropic => {
            Arc::new(AnthropicProvider::new(name, base_url, key, http).with_options(options))
        }
        ProviderKind::Gemini => {
            Arc::new(GeminiProvider::new(name, base_url, key, http).with_options(options))
        }
    })
}
