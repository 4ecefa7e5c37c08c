//! Baton: an LLM chat bot service for Discord and Telegram.
//!
//! Every conversation has exactly one orchestrator agent, run by a
//! conversation actor. The modules, in the order a message flows through
//! them:
//!
//! - [`config`]: typed configuration from `config/baton.toml` plus
//!   `BATON__SECTION__KEY` environment overrides; secrets as `SecretString`.
//! - [`conversation`]: the registry of conversation actors; each owns its
//!   settings, its queue and the one `Reply` handle to its channel.
//! - [`orchestrator`]: orchestrator mode: the delegation tools and the pool
//!   of workers a turn starts.
//! - [`agent`]: the model <-> tool loop shared by orchestrator and workers.
//! - [`llm`]: the `Provider` trait and the OpenAI, Anthropic and Gemini wire
//!   formats; retries and effort mapping.
//! - [`tools`]: worker-safe tools.
//! - [`store`]: the sqlx repository (SQLite by default, Postgres too).
//!
//! Platform adapters live in `adapters/` and speak only `baton-channel`.

pub mod llm;
pub mod store;
