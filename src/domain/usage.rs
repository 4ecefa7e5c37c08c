//! `Usage`: the tokens model calls used, as providers report them and
//! the store, budgets and metrics count them.

use serde::{Deserialize, Serialize};

/// Tokens one or more model calls used.
///
/// `input_tokens` counts every prompt token, whether the provider read it
/// from its prompt cache, wrote it there or processed it afresh; the two
/// cache fields say how many of them were read and written. (Anthropic
/// reports the three apart: its provider adds them up.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// Completion tokens (reasoning included).
    pub output_tokens: u64,
    /// Of `input_tokens`, those read from the provider's prompt cache
    /// (OpenAI `prompt_tokens_details.cached_tokens`, Anthropic
    /// `cache_read_input_tokens`, Gemini `cachedContentTokenCount`).
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Of `input_tokens`, those written to the prompt cache (Anthropic
    /// `cache_creation_input_tokens`; zero elsewhere).
    #[serde(default)]
    pub cache_write_tokens: u64,
}

impl Usage {
    /// Adds another call's usage to this total.
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
    }
}
