//! Baton's integration tests: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backpressure;
mod budget;
mod cli;
mod dashboard;
mod dashboard_browser;
mod discord;
mod disk_full;
mod engine;
mod limits;
mod mcp;
mod model_calls;
mod projects;
mod providers;
mod providers_in_chat;
mod routing;
mod store;
mod store_files;
mod support;
mod telegram;
mod telegram_hostile;
mod tools;
mod transcript;
mod turn_logs;
mod web_search;
