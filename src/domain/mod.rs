//! Baton's domain types: the vocabulary every layer speaks (a model's
//! name, a conversation's settings, the tokens a call used, a tool as the
//! model sees it). This module is the bottom of the crate's module graph:
//! it imports nothing of Baton, so any module may use it without making a
//! cycle (`tests/module_graph.rs` checks the graph).

mod model_ref;
mod settings;
mod tool_spec;
mod usage;

pub use model_ref::{ModelRef, ModelRefError};
pub use settings::{ConversationSettings, Mode};
pub use tool_spec::ToolSpec;
pub use usage::Usage;
