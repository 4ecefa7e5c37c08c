//! Typed configuration: a TOML file plus `BATON__SECTION__KEY` environment
//! overrides. Secrets are never in the file: it names the environment
//! variables that hold them, and they are read as [`SecretString`]s.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use baton_channel::Effort;
use secrecy::SecretString;
use serde::Deserialize;

use crate::llm::retry::RetryPolicy;
use crate::llm::routing::{AgentRole, RouteRequest, Specialty, WorkerProfile};
use crate::store::Mode;

/// The prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "BATON__";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The TOML (after environment overrides) does not fit the schema.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Everything Baton can be told; every field has a working default.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where state lives.
    pub storage: StorageConfig,
    /// Model APIs by name (`openai`, `anthropic`, ...).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Which models play which role, and what each supports.
    pub models: ModelsConfig,
    /// Conversation defaults and orchestrator limits.
    pub orchestrator: OrchestratorConfig,
    /// Engine-wide limits.
    pub engine: EngineConfig,
    /// Daily spending limits.
    pub budget: crate::budget::BudgetConfig,
    /// Baton's HTTP server (health check, Telegram webhook).
    pub server: ServerConfig,
    /// The Telegram adapter.
    pub telegram: TelegramConfig,
    /// The Discord adapter.
    pub discord: DiscordConfig,
    /// MCP servers whose tools workers (and the orchestrator) may call.
    pub mcp: crate::tools::mcp::McpConfig,
    /// Settings of the built-in tools (`[tools.fetch_url]`,
    /// `[tools.web_search]`).
    pub tools: crate::tools::ToolsConfig,
    /// Long-running projects.
    pub projects: crate::project::ProjectsConfig,
    /// Files users send, and answers sent back as files.
    pub media: crate::media::MediaConfig,
    /// Logging.
    pub log: LogConfig,
    /// Several instances on one Postgres database.
    pub cluster: crate::cluster::ClusterConfig,
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `sqlite://path.db` or `postgres://...`; created and migrated on start.
    pub url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://data/baton.db".into(),
        }
    }
}

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

/// A `provider:model` reference, as the config writes models.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelRef {
    /// The `[providers.NAME]` it runs on.
    pub provider: String,
    /// The provider's model name (may itself contain `:`, as Ollama's do).
    pub model: String,
}

impl FromStr for ModelRef {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => Ok(Self {
                provider: provider.into(),
                model: model.into(),
            }),
            _ => Err(ConfigError::Invalid(format!(
                "model {s:?} is not provider:model (for example openai:gpt-5.1)"
            ))),
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider, self.model)
    }
}

/// `[models]`: which model each role runs on, and what each model supports
/// and costs. How a model is chosen is in [`crate::llm::routing`].
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
    fn invalid_price(&self) -> Option<&'static str> {
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
    pub fn cost(&self, usage: crate::llm::Usage) -> f64 {
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

/// `[orchestrator]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrchestratorConfig {
    /// `single` or `orchestrator` for new conversations.
    pub default_mode: ModeSetting,
    /// Whether new conversations show worker output.
    pub default_verbose: bool,
    /// The effort of new conversations.
    pub default_effort: Effort,
    /// Whether new conversations start greedy (`/greedy`).
    pub default_greedy: bool,
    /// Whether new conversations start autonomous (`/autonomy`).
    pub default_autonomy: bool,
    /// Workers open at once in one turn.
    pub max_workers: usize,
    /// Seconds a worker run may take before it is stopped as timed out.
    pub worker_timeout_secs: u64,
    /// Model rounds in one agent loop before it must answer.
    pub max_tool_rounds: usize,
    /// Transcript messages sent to the orchestrator's model.
    pub history_limit: usize,
    /// With `/greedy on`, the round limits and the worker timeout are
    /// multiplied by this (at least 1).
    pub greedy_factor: u32,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        Self {
            default_mode: ModeSetting(Mode::Single),
            default_verbose: false,
            default_effort: Effort::On,
            default_greedy: false,
            default_autonomy: false,
            max_workers: 8,
            worker_timeout_secs: 300,
            max_tool_rounds: 20,
            history_limit: 40,
            greedy_factor: 3,
        }
    }
}

impl OrchestratorConfig {
    /// The worker timeout as a duration.
    pub fn worker_timeout(&self) -> Duration {
        Duration::from_secs(self.worker_timeout_secs)
    }
}

/// A [`Mode`] as written in the config (`single` or `orchestrator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeSetting(pub Mode);

impl<'de> Deserialize<'de> for ModeSetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = String::deserialize(deserializer)?;
        Mode::parse(&word).map(ModeSetting).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown mode {word:?}: use single or orchestrator"))
        })
    }
}

/// `[engine]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Model calls in flight at once across all conversations and
    /// providers: a ceiling for memory and cost over the providers' own
    /// adaptive limits (`[providers.NAME] max_concurrency`). Orchestrator
    /// calls go ahead of worker calls, and those of project calls, when
    /// slots are short.
    pub max_concurrent_model_calls: usize,
    /// Events waiting in one conversation's queue; past it, new messages
    /// wait in the store (never holding up other conversations).
    pub queue_capacity: usize,
    /// Messages one user may send per minute (across conversations) before
    /// further ones are stored but not answered; 0 turns the limit off.
    pub max_messages_per_user_per_minute: u32,
    /// The longest reply posted (and kept in the transcript), in
    /// characters; a longer answer is cut, with a note saying so.
    pub max_reply_chars: usize,
    /// Seconds an idle conversation actor stays in memory.
    pub idle_timeout_secs: u64,
    /// Attempts for one orchestrator model call (transient errors only).
    pub retry_attempts: u32,
    /// First retry delay in milliseconds; doubles each attempt.
    pub retry_base_delay_ms: u64,
    /// Longest retry delay in milliseconds (also caps Retry-After).
    pub retry_max_delay_ms: u64,
    /// Seconds one chat turn (the orchestrator's loop, its retries and its
    /// workers) may take; at the deadline it is stopped and the user told.
    /// Projects have no such limit.
    pub turn_deadline_secs: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_concurrent_model_calls: 512,
            queue_capacity: 64,
            max_messages_per_user_per_minute: 30,
            max_reply_chars: 16_000,
            idle_timeout_secs: 600,
            retry_attempts: 4,
            retry_base_delay_ms: 500,
            retry_max_delay_ms: 30_000,
            turn_deadline_secs: 600,
        }
    }
}

impl EngineConfig {
    /// The retry policy for orchestrator model calls.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.retry_attempts.max(1),
            base_delay: Duration::from_millis(self.retry_base_delay_ms),
            max_delay: Duration::from_millis(self.retry_max_delay_ms),
        }
    }

    /// `turn_deadline_secs` as a duration.
    pub fn turn_deadline(&self) -> Duration {
        Duration::from_secs(self.turn_deadline_secs)
    }
}

/// `[server]`: Baton's own HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Whether to serve at all (webhook mode needs it).
    pub enabled: bool,
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// The variable holding the dashboard's token; the dashboard and
    /// `/api` are off when it is unset or empty.
    pub dashboard_token_env: Option<String>,
    /// A token given by code (tests, embedding); wins over `dashboard_token_env`.
    #[serde(skip)]
    pub dashboard_token: Option<SecretString>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:8080".into(),
            dashboard_token_env: None,
            dashboard_token: None,
        }
    }
}

impl ServerConfig {
    /// The dashboard token: given by code, or from `dashboard_token_env`.
    pub fn dashboard_token(&self) -> Option<SecretString> {
        self.dashboard_token
            .clone()
            .or_else(|| self.dashboard_token_env.as_deref().and_then(env_secret))
    }
}

/// `[log]`: how Baton logs (to stderr).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` (human-readable lines) or `json` (one object a line).
    pub format: LogFormat,
    /// A tracing filter (`info`, `baton=debug,info`); `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".into(),
        }
    }
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// tracing-subscriber's JSON: one object a line, with the spans.
    Json,
}

/// How Telegram updates arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TelegramMode {
    /// `getUpdates` long polling: no public address needed.
    #[default]
    Polling,
    /// Telegram POSTs updates to `webhook_url`, served by `[server]`.
    Webhook,
}

/// Who may talk to the bot in private chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// Only `allowed_users`.
    #[default]
    Allowlist,
    /// Anyone.
    Open,
}

/// `[telegram]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramConfig {
    /// Whether to start the adapter (it also needs its token variable set).
    pub enabled: bool,
    /// The environment variable holding the bot token.
    pub token_env: String,
    /// The Bot API base URL (a local Bot API server or a test fake).
    pub api_url: String,
    /// `polling` or `webhook`.
    pub mode: TelegramMode,
    /// Webhook mode: the public HTTPS URL Telegram posts to; it must reach
    /// `webhook_path` on `[server] listen` (through a reverse proxy).
    pub webhook_url: Option<String>,
    /// Webhook mode: the path served on Baton's HTTP server.
    pub webhook_path: String,
    /// Webhook mode: the environment variable holding the secret token
    /// Telegram sends back in `X-Telegram-Bot-Api-Secret-Token`.
    pub webhook_secret_env: String,
    /// Telegram user ids that may talk to the bot anywhere and change
    /// settings in groups.
    pub allowed_users: Vec<u64>,
    /// Group and supergroup chat ids whose members may talk to the bot.
    pub allowed_chats: Vec<i64>,
    /// `allowlist` (only `allowed_users` in private chats) or `open`.
    pub dm_policy: DmPolicy,
    /// Least milliseconds between two messages to one chat.
    pub min_send_interval_ms: u64,
    /// Most messages to one group in a minute.
    pub group_messages_per_minute: usize,
    /// Milliseconds verbose worker output is collected before it is sent.
    pub verbose_batch_ms: u64,
    /// Long-polling timeout of `getUpdates` in seconds (at most 15).
    pub poll_timeout_secs: u64,
    /// A token given by code (tests, embedding); wins over `token_env`.
    /// Never read from the file.
    #[serde(skip)]
    pub token: Option<SecretString>,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token_env: "TELEGRAM_BOT_TOKEN".into(),
            api_url: "https://api.telegram.org".into(),
            mode: TelegramMode::Polling,
            webhook_url: None,
            webhook_path: "/telegram/webhook".into(),
            webhook_secret_env: "TELEGRAM_WEBHOOK_SECRET".into(),
            allowed_users: Vec::new(),
            allowed_chats: Vec::new(),
            dm_policy: DmPolicy::Allowlist,
            min_send_interval_ms: 1000,
            group_messages_per_minute: 20,
            verbose_batch_ms: 1000,
            poll_timeout_secs: 10,
            token: None,
        }
    }
}

impl TelegramConfig {
    /// The bot token: given by code, or from `token_env`.
    pub fn token(&self) -> Option<SecretString> {
        self.token.clone().or_else(|| env_secret(&self.token_env))
    }

    /// The webhook secret from `webhook_secret_env`.
    pub fn webhook_secret(&self) -> Option<SecretString> {
        env_secret(&self.webhook_secret_env)
    }
}

fn env_secret(var: &str) -> Option<SecretString> {
    std::env::var(var)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .map(SecretString::from)
}

/// `[discord]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscordConfig {
    /// Whether to start the adapter (it also needs its token variable set).
    pub enabled: bool,
    /// The environment variable holding the bot token.
    pub token_env: String,
    /// The REST base (serenity's proxy setting); the gateway URL is asked
    /// of it.
    pub api_url: String,
    /// In guilds, answer only when mentioned or replied to.
    pub require_mention: bool,
    /// Per-guild exceptions to `require_mention`, by guild id (as a string
    /// key: `{ "123" = false }`).
    pub require_mention_in: BTreeMap<String, bool>,
    /// A guild to register the slash commands in as well, so that changes
    /// show at once.
    pub dev_guild: Option<u64>,
    /// Guild ids whose members may talk to the bot.
    pub allowed_guilds: Vec<u64>,
    /// User ids that may talk to the bot anywhere and change settings in
    /// guilds.
    pub allowed_users: Vec<u64>,
    /// Role ids whose members may change settings in guilds (besides
    /// members with Manage Server).
    pub allowed_roles: Vec<u64>,
    /// `allowlist` (only `allowed_users` in DMs) or `open`.
    pub dm_policy: DmPolicy,
    /// Milliseconds verbose worker output is collected before it is sent.
    pub verbose_batch_ms: u64,
    /// Milliseconds a slash command waits for its answer before it is
    /// deferred (below Discord's 3-second deadline).
    pub defer_after_ms: u64,
    /// Requests a second for the whole bot (Discord allows 50).
    pub global_requests_per_second: u32,
    /// A token given by code (tests, embedding); wins over `token_env`.
    /// Never read from the file.
    #[serde(skip)]
    pub token: Option<SecretString>,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            token_env: "DISCORD_BOT_TOKEN".into(),
            api_url: "https://discord.com".into(),
            require_mention: true,
            require_mention_in: BTreeMap::new(),
            dev_guild: None,
            allowed_guilds: Vec::new(),
            allowed_users: Vec::new(),
            allowed_roles: Vec::new(),
            dm_policy: DmPolicy::Allowlist,
            verbose_batch_ms: 2000,
            defer_after_ms: 1500,
            global_requests_per_second: 45,
            token: None,
        }
    }
}

impl DiscordConfig {
    /// The bot token: given by code, or from `token_env`.
    pub fn token(&self) -> Option<SecretString> {
        self.token.clone().or_else(|| env_secret(&self.token_env))
    }
}

impl Config {
    /// Reads `path` and applies the process environment's overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, std::env::vars())
    }

    /// Parses `text` and applies `BATON__SECTION__KEY=value` overrides from
    /// `env` (values are TOML scalars or arrays where they parse as such,
    /// plain strings otherwise).
    ///
    /// A provider key whose `api_key_env` variable is in `env` is taken from
    /// there; other secrets are read from the process environment when
    /// needed.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let env: Vec<(String, String)> = env.into_iter().collect();
        for (name, raw) in &env {
            let Some(path) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
            apply_override(&mut table, &path, parse_env_value(raw))
                .map_err(|why| ConfigError::Invalid(format!("{name}: {why}")))?;
        }
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        for provider in config.providers.values_mut() {
            let Some(var) = provider.api_key_env.as_deref() else {
                continue;
            };
            provider.api_key = env
                .iter()
                .find(|(name, value)| name == var && !value.trim().is_empty())
                .map(|(_, value)| SecretString::from(value.clone()));
        }
        if let Some(search) = config.tools.web_search.as_mut() {
            search.take_key_from(&env);
        }
        config.validate()?;
        Ok(config)
    }

    /// Every secret the config can reach, for redaction: the provider keys,
    /// the Telegram and Discord bot tokens, the Telegram webhook secret and
    /// the MCP servers' bearer tokens and the web search key (those that
    /// are set).
    pub fn secrets(&self) -> Vec<SecretString> {
        let providers = self.providers.values().filter_map(ProviderConfig::api_key);
        let mcp = self
            .mcp
            .servers
            .values()
            .filter_map(|server| server.bearer_token_env.as_deref())
            .filter_map(env_secret);
        let adapters = [
            self.telegram.token(),
            self.telegram.webhook_secret(),
            self.discord.token(),
            self.server.dashboard_token(),
            self.tools.web_search.as_ref().and_then(|s| s.api_key()),
        ];
        providers
            .chain(mcp)
            .chain(adapters.into_iter().flatten())
            .collect()
    }

    /// Checks what the types cannot: model references and limits.
    fn validate(&self) -> Result<(), ConfigError> {
        // Every model reference is `provider:model`; whether a role has a
        // model and its provider a section is checked when the models are
        // built (at start, and by `baton check`).
        self.models.configured()?;
        if self.models.auto_tier && self.models.cheap_model.is_none() {
            return Err(ConfigError::Invalid(
                "models.auto_tier is on but models.cheap_model is not set".into(),
            ));
        }
        let invalid = |what: &str| Err(ConfigError::Invalid(format!("{what} must be at least 1")));
        if self.orchestrator.max_workers == 0 {
            return invalid("orchestrator.max_workers");
        }
        if self.orchestrator.max_tool_rounds == 0 {
            return invalid("orchestrator.max_tool_rounds");
        }
        if self.orchestrator.greedy_factor == 0 {
            return invalid("orchestrator.greedy_factor");
        }
        if self.engine.max_concurrent_model_calls == 0 {
            return invalid("engine.max_concurrent_model_calls");
        }
        if self.engine.queue_capacity == 0 {
            return invalid("engine.queue_capacity");
        }
        if self.engine.max_reply_chars == 0 {
            return invalid("engine.max_reply_chars");
        }
        if self.engine.turn_deadline_secs == 0 {
            return invalid("engine.turn_deadline_secs");
        }
        for (name, provider) in &self.providers {
            if provider.idle_timeout_secs == 0 {
                return invalid(&format!("providers.{name}.idle_timeout_secs"));
            }
            if provider.max_response_bytes == 0 {
                return invalid(&format!("providers.{name}.max_response_bytes"));
            }
            if provider.max_concurrency == Some(0) {
                return invalid(&format!("providers.{name}.max_concurrency"));
            }
        }
        if self.cluster.lease_secs < 3 {
            return Err(ConfigError::Invalid(
                "cluster.lease_secs must be at least 3".into(),
            ));
        }
        for (model, spec) in &self.models.catalog {
            if let Some(key) = spec.invalid_price() {
                return Err(ConfigError::Invalid(format!(
                    "models.catalog.\"{model}\".{key} must be a number of dollars, 0 or more"
                )));
            }
        }
        if let Some(key) = self.projects.invalid_key() {
            return invalid(key);
        }
        if let Some(key) = self.media.invalid_key() {
            return invalid(key);
        }
        let telegram = &self.telegram;
        if telegram.group_messages_per_minute == 0 {
            return invalid("telegram.group_messages_per_minute");
        }
        if !(1..=15).contains(&telegram.poll_timeout_secs) {
            return Err(ConfigError::Invalid(
                "telegram.poll_timeout_secs must be 1 to 15 (the HTTP client gives up at 17)"
                    .into(),
            ));
        }
        if telegram.enabled && telegram.mode == TelegramMode::Webhook {
            if telegram.webhook_url.as_deref().is_none_or(str::is_empty) {
                return Err(ConfigError::Invalid(
                    "telegram.mode = \"webhook\" needs telegram.webhook_url".into(),
                ));
            }
            if !telegram.webhook_path.starts_with('/') {
                return Err(ConfigError::Invalid(
                    "telegram.webhook_path must start with /".into(),
                ));
            }
        }
        self.tools.validate().map_err(ConfigError::Invalid)?;
        self.mcp.validate()
    }
}

fn parse_env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("value = {raw}"))
        .ok()
        .and_then(|mut table| table.remove("value"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn apply_override(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [key] if key.is_empty() => Err("empty key".into()),
        [key] => {
            table.insert(key.clone(), value);
            Ok(())
        }
        [head, rest @ ..] => {
            let entry = table
                .entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(inner) => apply_override(inner, rest, value),
                _ => Err(format!("{head} is not a section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_shipped_config_parses() {
        let text = include_str!("../config/baton.toml");
        let config = Config::from_toml(text, env(&[])).unwrap();
        assert_eq!(
            config.models.orchestrator_model().unwrap().provider,
            "openai"
        );
        assert!(config.providers.contains_key("anthropic"));
        assert_eq!(config.media.max_bytes, 10_000_000);
        assert!(
            config
                .models
                .spec(&config.models.orchestrator_model().unwrap())
                .vision
        );
    }

    #[test]
    fn media_keys_are_read_and_zero_sizes_refused() {
        let config = Config::from_toml("", env(&[])).unwrap();
        assert_eq!(config.media.max_bytes, 10_000_000);
        assert_eq!(config.media.max_text_bytes, 200_000);
        assert_eq!(config.media.download_timeout_secs, 60);
        assert_eq!(config.media.out(), baton_channel::MediaOut::default());
        let config = Config::from_toml(
            "[media]\ncode_as_file_lines = 120\n",
            env(&[("BATON__MEDIA__MAX_PIECES", "0")]),
        )
        .unwrap();
        assert_eq!(config.media.code_as_file_lines, 120);
        assert_eq!(config.media.max_pieces, 0);
        let refused = Config::from_toml("[media]\nmax_bytes = 0\n", env(&[])).unwrap_err();
        assert!(refused.to_string().contains("media.max_bytes"), "{refused}");
        assert!(Config::from_toml("[media]\nmax_files = 3\n", env(&[])).is_err());
    }

    #[test]
    fn cached_and_cache_write_tokens_have_their_own_prices() {
        let text = r#"
[models.catalog."a:priced"]
input_price = 2.0
output_price = 10.0
cached_input_price = 0.2
cache_write_price = 3.0

[models.catalog."a:unpriced-cache"]
input_price = 2.0
"#;
        let config = Config::from_toml(text, env(&[])).unwrap();
        let usage = crate::llm::Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cached_input_tokens: 500_000,
            cache_write_tokens: 250_000,
        };
        let priced = &config.models.catalog["a:priced"];
        // 250k plain at $2, 500k cached at $0.2, 250k written at $3, 100k out at $10.
        assert!((priced.cost(usage) - (0.5 + 0.1 + 0.75 + 1.0)).abs() < 1e-9);
        // Unset: cached at the input price, writes at 1.25 times it.
        let plain = &config.models.catalog["a:unpriced-cache"];
        assert!((plain.cost(usage) - (0.5 + 1.0 + 0.625)).abs() < 1e-9);
        // Cache counts larger than the input (a confused provider) never
        // make a negative or inflated cost.
        let odd = crate::llm::Usage {
            input_tokens: 10,
            cached_input_tokens: 50,
            cache_write_tokens: 50,
            ..crate::llm::Usage::default()
        };
        assert!((priced.cost(odd) - 10.0 * 0.2 / 1e6).abs() < 1e-12);

        let negative = "[models.catalog.\"a:b\"]\ncached_input_price = -1.0\n";
        let error = Config::from_toml(negative, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("cached_input_price"), "{error}");
    }

    #[test]
    fn environment_overrides_any_key() {
        let config = Config::from_toml(
            "[orchestrator]\nmax_workers = 3\n",
            env(&[
                ("BATON__ORCHESTRATOR__MAX_WORKERS", "5"),
                ("BATON__ORCHESTRATOR__DEFAULT_MODE", "orchestrator"),
                ("BATON__STORAGE__URL", "sqlite::memory:"),
                ("BATON__PROVIDERS__LOCAL__KIND", "openai"),
                (
                    "BATON__PROVIDERS__LOCAL__BASE_URL",
                    "http://127.0.0.1:11434/v1",
                ),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.orchestrator.max_workers, 5);
        assert_eq!(
            config.orchestrator.default_mode,
            ModeSetting(Mode::Orchestrator)
        );
        assert_eq!(config.storage.url, "sqlite::memory:");
        assert_eq!(
            config.providers["local"].base_url,
            "http://127.0.0.1:11434/v1"
        );
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = Config::from_toml("[models]\norchestrator = \"gpt\"\n", env(&[])).unwrap_err();
        assert!(err.to_string().contains("provider:model"), "{err}");
        let err =
            Config::from_toml("[orchestrator]\ndefault_mode = \"solo\"\n", env(&[])).unwrap_err();
        assert!(err.to_string().contains("single or orchestrator"), "{err}");
        let err = Config::from_toml("[telegram]\nmode = \"webhook\"\n", env(&[])).unwrap_err();
        assert!(err.to_string().contains("webhook_url"), "{err}");
        let err = Config::from_toml("[telegram]\ndm_policy = \"maybe\"\n", env(&[])).unwrap_err();
        assert!(
            err.to_string().contains("dm_policy") || err.to_string().contains("maybe"),
            "{err}"
        );
        let err = Config::from_toml("[storage]\nurll = \"x\"\n", env(&[])).unwrap_err();
        assert!(err.to_string().contains("urll"), "{err}");
    }

    #[test]
    fn the_fetch_url_proxy_is_off_unless_set_and_unknown_tool_keys_are_refused() {
        let config = Config::from_toml("", env(&[])).unwrap();
        assert_eq!(config.tools.fetch_url.proxy, None);
        let config = Config::from_toml(
            "[tools.fetch_url]\nproxy = \"http://127.0.0.1:3128\"\n",
            env(&[]),
        )
        .unwrap();
        assert_eq!(
            config.tools.fetch_url.proxy.as_deref(),
            Some("http://127.0.0.1:3128")
        );
        let config = Config::from_toml(
            "",
            env(&[("BATON__TOOLS__FETCH_URL__PROXY", "http://10.0.0.1:8080")]),
        )
        .unwrap();
        assert_eq!(
            config.tools.fetch_url.proxy.as_deref(),
            Some("http://10.0.0.1:8080")
        );
        for bad in [
            "[tools.fetch_url]\nproxyy = \"http://127.0.0.1:3128\"\n",
            "[tools.fetch_urll]\nproxy = \"http://127.0.0.1:3128\"\n",
            "[tools]\nproxy = \"http://127.0.0.1:3128\"\n",
        ] {
            let err = Config::from_toml(bad, env(&[])).unwrap_err();
            assert!(err.to_string().contains("unknown field"), "{bad}: {err}");
        }
        let err = Config::from_toml("[tools.fetch_url]\nproxy = \"socks5://h:1\"\n", env(&[]))
            .unwrap_err();
        assert!(err.to_string().contains("tools.fetch_url.proxy"), "{err}");
    }

    #[test]
    fn provider_limits_have_defaults_and_are_checked() {
        let provider = "[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n";
        let config = Config::from_toml(provider, env(&[])).unwrap();
        assert_eq!(config.providers["p"].idle_timeout_secs, 60);
        assert_eq!(config.providers["p"].max_response_bytes, 4_000_000);
        assert_eq!(config.engine.turn_deadline_secs, 600);
        for (key, text) in [
            (
                "providers.p.idle_timeout_secs",
                format!("{provider}idle_timeout_secs = 0\n"),
            ),
            (
                "providers.p.max_response_bytes",
                format!("{provider}max_response_bytes = 0\n"),
            ),
            (
                "providers.p.max_concurrency",
                format!("{provider}max_concurrency = 0\n"),
            ),
            (
                "engine.turn_deadline_secs",
                "[engine]\nturn_deadline_secs = 0\n".to_owned(),
            ),
        ] {
            let err = Config::from_toml(&text, env(&[])).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn provider_concurrency_defaults_to_a_handful_on_loopback() {
        let ceiling = |base_url: &str, extra: &str| {
            let text =
                format!("[providers.p]\nkind = \"openai\"\nbase_url = \"{base_url}\"\n{extra}");
            Config::from_toml(&text, env(&[])).unwrap().providers["p"].max_concurrency()
        };
        assert_eq!(ceiling("https://api.openai.com/v1", ""), 256);
        assert_eq!(ceiling("http://127.0.0.1:11434/v1", ""), 4);
        assert_eq!(ceiling("http://localhost:11434/v1", ""), 4);
        assert_eq!(ceiling("http://[::1]:8000/v1", ""), 4);
        assert_eq!(
            ceiling("http://127.0.0.1:11434/v1", "max_concurrency = 16\n"),
            16
        );
        assert_eq!(Config::default().engine.max_concurrent_model_calls, 512);
    }

    #[test]
    fn a_provider_key_is_read_from_the_variable_list() {
        use secrecy::ExposeSecret;
        let text = "[providers.p]\nkind = \"openai\"\nbase_url = \"http://x/v1\"\n\
                    api_key_env = \"BATON_CONFIG_TEST_KEY_7\"\n";
        let config = Config::from_toml(
            text,
            env(&[("BATON_CONFIG_TEST_KEY_7", "sk-from-the-list")]),
        )
        .unwrap();
        let key = config.providers["p"].api_key().unwrap();
        assert_eq!(key.expose_secret(), "sk-from-the-list");
        assert!(!format!("{config:?}").contains("sk-from-the-list"));
        let secrets: Vec<String> = config
            .secrets()
            .iter()
            .map(|secret| secret.expose_secret().to_owned())
            .collect();
        assert!(
            secrets.contains(&"sk-from-the-list".to_owned()),
            "{secrets:?}"
        );
    }

    #[test]
    fn model_refs_split_at_the_first_colon() {
        let model: ModelRef = "ollama:llama3:8b".parse().unwrap();
        assert_eq!(model.provider, "ollama");
        assert_eq!(model.model, "llama3:8b");
        assert_eq!(model.to_string(), "ollama:llama3:8b");
    }
}
