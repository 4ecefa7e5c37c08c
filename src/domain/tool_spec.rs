//! `ToolSpec`: a tool as the model is offered it (name, description,
//! argument schema), shared by the tools that describe themselves and the
//! providers that send the description.

use serde::{Deserialize, Serialize};

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments (an object schema).
    pub parameters: serde_json::Value,
}
