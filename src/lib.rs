//! Baton: an LLM chat bot service for Discord and Telegram.
//!
//! Every conversation has exactly one orchestrator agent, run by a
//! conversation actor. The modules, in the order a message flows through
//! them:
//!
//! - [`domain`]: the types every layer speaks (`ModelRef`, `Mode`,
//!   `ConversationSettings`, `Usage`, `ToolSpec`); it imports nothing of
//!   Baton and is the bottom of the module graph.
//! - [`config`]: typed configuration from `config/baton.toml` plus
//!   `BATON__SECTION__KEY` environment overrides; secrets as `SecretString`.
//! - [`app`]: config to [`services::Services`], and the service's `run`.
//! - [`adapters`]: the registry as the adapters' `Dispatch`, and adapter
//!   settings from config; [`server`]: the HTTP server (`/healthz`, the
//!   Telegram webhook).
//! - [`conversation`]: the registry of conversation actors; each owns its
//!   settings, its queue and the one `Reply` handle to its channel.
//! - [`orchestrator`]: orchestrator mode: the delegation tools and the pool
//!   of workers a turn starts.
//! - [`agent`]: the model <-> tool loop shared by orchestrator and workers,
//!   and the engine-wide model-call limiter.
//! - [`llm`]: the `Provider` trait and the OpenAI, Anthropic and Gemini wire
//!   formats; retries and effort mapping.
//! - [`project`]: long-running projects: a boss agent with the delegation
//!   tools in the background, posting through its conversation's actor.
//! - [`tools`]: worker-safe tools.
//! - [`web`]: `/readyz`, `/metrics`, and the dashboard with its JSON API;
//!   [`metrics`]: the metric names and the recorder; [`logging`]: `[log]`.
//! - [`budget`]: today's spending, and the daily budgets that limit it.
//! - [`redact`]: secrets taken out of provider error messages.
//! - [`store`]: the sqlx repository (SQLite by default, Postgres too).
//! - [`chat`] and [`check`]: the `baton chat` terminal channel and
//!   `baton check`.
//!
//! Platform adapters live in `adapters/` and speak only `baton-channel`.

pub mod adapters;
pub mod agent;
pub mod app;
pub mod budget;
pub mod chat;
pub mod check;
pub mod cluster;
pub mod config;
pub mod conversation;
pub mod domain;
pub mod llm;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod newcomer;
pub mod orchestrator;
pub mod project;
pub mod redact;
pub mod server;
pub mod services;
pub mod store;
pub mod tools;
pub mod web;
