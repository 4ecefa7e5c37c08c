//! Typed configuration: a TOML file plus `BATON__SECTION__KEY` environment
//! overrides. Secrets are never in the file: it names the environment
//! variables that hold them, and they are read as [`SecretString`]s.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use baton_channel::Effort;
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::{Mode, ModelRef, ModelRefError};
use routing::{AgentRole, RouteRequest, Specialty, WorkerProfile};

mod budget;
mod media;
mod models;
mod platforms;
mod projects;
pub mod routing;
#[cfg(test)]
mod tests;

pub use baton_channel::DmPolicy;
pub use budget::BudgetConfig;
pub use media::MediaConfig;
pub use models::{ModelSpec, ModelsConfig, ProviderConfig, ProviderKind};
pub use platforms::{
    DiscordConfig, TelegramConfig, TelegramMode, discord_token, telegram_token,
    telegram_webhook_secret,
};
pub use projects::ProjectsConfig;

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

impl From<baton_channel::InvalidSetting> for ConfigError {
    fn from(error: baton_channel::InvalidSetting) -> Self {
        ConfigError::Invalid(error.0)
    }
}

impl From<ModelRefError> for ConfigError {
    fn from(error: ModelRefError) -> Self {
        ConfigError::Invalid(error.to_string())
    }
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
    pub budget: BudgetConfig,
    /// Baton's HTTP server (health check, Telegram webhook).
    pub server: ServerConfig,
    /// The Telegram adapter (the adapter's own section type).
    pub telegram: TelegramConfig,
    /// The Discord adapter (the adapter's own section type).
    pub discord: DiscordConfig,
    /// MCP servers whose tools workers (and the orchestrator) may call.
    pub mcp: crate::tools::mcp::McpConfig,
    /// Settings of the built-in tools (`[tools.fetch_url]`,
    /// `[tools.web_search]`).
    pub tools: crate::tools::ToolsConfig,
    /// Long-running projects.
    pub projects: ProjectsConfig,
    /// Files users send, and answers sent back as files.
    pub media: MediaConfig,
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
            telegram_token(&self.telegram),
            telegram_webhook_secret(&self.telegram),
            discord_token(&self.discord),
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
        self.telegram.validate()?;
        self.tools.validate().map_err(ConfigError::Invalid)?;
        self.mcp.validate().map_err(ConfigError::Invalid)
    }
}

fn env_secret(var: &str) -> Option<SecretString> {
    std::env::var(var)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .map(SecretString::from)
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
