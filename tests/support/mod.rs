//! Shared test support: fake servers speaking real wire formats.

pub mod fake_llm;
