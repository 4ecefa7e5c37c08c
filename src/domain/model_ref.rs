//! `ModelRef`: a model named as `provider:model`, as the config, `/model`
//! and the store write it.

use std::fmt;
use std::str::FromStr;

/// A `provider:model` reference, as the config writes models.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelRef {
    /// The `[providers.NAME]` it runs on.
    pub provider: String,
    /// The provider's model name (may itself contain `:`, as Ollama's do).
    pub model: String,
}

impl FromStr for ModelRef {
    type Err = ModelRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => Ok(Self {
                provider: provider.into(),
                model: model.into(),
            }),
            _ => Err(ModelRefError(s.to_string())),
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider, self.model)
    }
}

/// A model reference that is not `provider:model`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model {0:?} is not provider:model (for example openai:gpt-5.1)")]
pub struct ModelRefError(pub String);
