//! Shared test support: fake servers speaking real wire formats, and a
//! whole engine wired to them.
#![allow(dead_code)]

pub mod bot;
pub mod fake_llm;
pub mod fake_telegram;
