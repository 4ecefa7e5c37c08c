//! Shared test support: fake servers speaking real wire formats, a whole
//! engine wired to them, and a throwaway PostgreSQL server.
#![allow(dead_code)]

pub mod bot;
pub mod discord_guild;
pub mod eventually;
pub mod fake_discord;
pub mod fake_llm;
pub mod fake_search;
pub mod fake_telegram;
pub mod mcp;
pub mod mcp_server;
pub mod multipart;
pub mod postgres;
pub mod service;
pub mod telegram_config;
