//! Baton's integration tests: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backpressure;
mod budget;
mod cli;
mod discord;
mod engine;
mod limits;
mod mcp;
mod projects;
mod providers;
mod routing;
mod store;
mod support;
mod telegram;
mod telegram_hostile;
mod tools;
mod transcript;
