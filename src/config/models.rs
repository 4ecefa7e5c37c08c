//! `[providers.NAME]` and `[models]`: which model APIs Baton talks to, and
//! which models play which role and what each supports and costs.

use super::*;

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI chat completions (also Ollama, OpenRouter, vLLM).
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Gemini generateContent.
    Gemini,
}

/// `[providers.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The wire format.
    pub kind: ProviderKind,
    /// The API's base URL.
    pub base_url: String,
    /// The environment variable holding the API key (none for local models).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Seconds before one model call times out.
    #[serde(default = "default_request_timeout_secs")]
    pub timeout_secs: u64,
    /// Seconds without a byte while an answer's body is being read before
    /// the call fails (transient, so the orchestrator's call is retried).
    /// The answers are not streamed: the wait for an answer to start is
    /// bounded by `timeout_secs` alone.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// The largest answer body read, in bytes; a larger answer fails the
    /// call (permanent) and is not read further.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// The most model calls in flight to this provider at once: a ceiling
    /// under which the adaptive limit moves (see `agent/limiter`). Unset:
    /// [`DEFAULT_HOSTED_CONCURRENCY`], or [`DEFAULT_LOOPBACK_CONCURRENCY`]
    /// for a base URL on this machine (a local model server).
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// The key, when found in the variable list given to
    /// [`Config::from_toml`] (or given by code); wins over the process
    /// environment. Never read from the file.
    #[serde(skip)]
    pub api_key: Option<SecretString>,
}

fn default_request_timeout_secs() -> u64 {
    300
}

fn default_idle_timeout_secs() -> u64 {
    60
}

fn default_max_response_bytes() -> u64 {
    4_000_000
}

/// `max_concurrency` of a hosted API when the config does not say.
pub const DEFAULT_HOSTED_CONCURRENCY: usize = 256;
/// `max_concurrency` of a provider on loopback (`localhost`, `127.0.0.1`,
/// `[::1]`: Ollama or vLLM on one GPU) when the config does not say.
pub const DEFAULT_LOOPBACK_CONCURRENCY: usize = 4;

impl ProviderConfig {
    /// The API key: given by code or found when the config was read, else
    /// from the environment, if the variable is named and set.
    pub fn api_key(&self) -> Option<SecretString> {
        if let Some(key) = &self.api_key {
            return Some(key.clone());
        }
        env_secret(self.api_key_env.as_deref()?)
    }

    /// `idle_timeout_secs` as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// `max_concurrency`, or its default for where `base_url` points.
    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency.unwrap_or_else(|| {
            if is_loopback_url(&self.base_url) {
                DEFAULT_LOOPBACK_CONCURRENCY
            } else {
                DEFAULT_HOSTED_CONCURRENCY
            }
        })
    }
}

/// Whether `url`'s host is this machine (`localhost`, a loopback address).
fn is_loopback_url(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    // An IPv6 host comes in brackets.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

/// `[models]`: which model each role runs on, and what each model supports
/// and costs. How a model is chosen is in [`crate::config::routing`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// The orchestrator's model, `provider:model`.
    pub orchestrator: Option<String>,
    /// The workers' model; `fallback`, then the orchestrator's, when unset.
    pub worker: Option<String>,
    /// The last resort when a role has no model of its own.
    pub fallback: Option<String>,
    /// With `auto_tier` on, simple messages in single mode go here.
    pub cheap_model: Option<String>,
    /// Sends simple messages in single mode to `cheap_model`.
    pub auto_tier: bool,
    /// A model per worker specialty (`coder = "provider:model"`).
    pub specialties: BTreeMap<Specialty, String>,
    /// Named worker profiles `spawn_worker` can ask for.
    pub profiles: BTreeMap<String, WorkerProfile>,
    /// What each model supports, keyed by `provider:model`.
    pub catalog: BTreeMap<String, ModelSpec>,
}

impl ModelsConfig {
    /// The orchestrator's default model.
    pub fn orchestrator_model(&self) -> Result<ModelRef, ConfigError> {
        Ok(self
            .route(AgentRole::Orchestrator, RouteRequest::default())?
            .0)
    }

    /// The workers' default model.
    pub fn worker_model(&self) -> Result<ModelRef, ConfigError> {
        Ok(self.route(AgentRole::Worker, RouteRequest::default())?.0)
    }

    /// What `model` supports: its catalog entry, or the defaults.
    pub fn spec(&self, model: &ModelRef) -> ModelSpec {
        self.catalog
            .get(&model.to_string())
            .cloned()
            .unwrap_or_default()
    }
}

/// `[models.catalog."provider:model"]`: what one model supports and costs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSpec {
    /// The effort levels it accepts; requests are clamped to these.
    pub efforts: Vec<Effort>,
    /// Its context window in tokens, where known.
    pub context_window: Option<u64>,
    /// US dollars per million input tokens.
    pub input_price: f64,
    /// US dollars per million output tokens.
    pub output_price: f64,
    /// Whether images may be sent to it.
    pub vision: bool,
    /// US dollars per million input tokens read from the provider's prompt
    /// cache. Unset: `input_price` (no discount assumed, so a budget is never
    /// under-counted; real providers bill less, e.g. a tenth).
    pub cached_input_price: Option<f64>,
    /// US dollars per million input tokens written to the prompt cache
    /// (Anthropic). Unset: 1.25 × `input_price`, what Anthropic bills for a
    /// five-minute cache write.
    pub cache_write_price: Option<f64>,
}

impl ModelSpec {
    /// The first price that is negative or not a number, by its key.
    pub(super) fn invalid_price(&self) -> Option<&'static str> {
        [
            ("input_price", Some(self.input_price)),
            ("output_price", Some(self.output_price)),
            ("cached_input_price", self.cached_input_price),
            ("cache_write_price", self.cache_write_price),
        ]
        .into_iter()
        .find(|(_, price)| price.is_some_and(|p| !(p.is_finite() && p >= 0.0)))
        .map(|(key, _)| key)
    }
}

/// What a cache write costs against an uncached input token when the
/// catalog gives no `cache_write_price` (Anthropic's five-minute writes).
const CACHE_WRITE_FACTOR: f64 = 1.25;

impl ModelSpec {
    /// The cost in US dollars of `usage` at this model's prices: input
    /// tokens neither read from nor written to the cache at `input_price`,
    /// cached ones at `cached_input_price`, cache writes at
    /// `cache_write_price`, output at `output_price`. Budgets, `/status` and
    /// the dashboard all price through here.
    pub fn cost(&self, usage: crate::domain::Usage) -> f64 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
        let plain = usage.input_tokens - cached - written;
        let cached_price = self.cached_input_price.unwrap_or(self.input_price);
        let write_price = self
            .cache_write_price
            .unwrap_or(self.input_price * CACHE_WRITE_FACTOR);
        (plain as f64 * self.input_price
            + cached as f64 * cached_price
            + written as f64 * write_price
            + usage.output_tokens as f64 * self.output_price)
            / 1_000_000.0
    }
}

impl Default for ModelSpec {
    fn default() -> Self {
        Self {
            efforts: vec![Effort::Off, Effort::On, Effort::High],
            context_window: None,
            input_price: 0.0,
            output_price: 0.0,
            vision: false,
            cached_input_price: None,
            cache_write_price: None,
        }
    }
}
