//! A conversation's settings (`Mode`, `ConversationSettings`): what the
//! commands change, the store keeps and the engine runs by.

use baton_channel::Effort;

/// Whether a conversation's orchestrator answers alone or may delegate.
#[derive(strum::IntoStaticStr, strum::EnumString, strum::Display)]
#[strum(serialize_all = "snake_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The orchestrator answers by itself; no delegation tools are offered.
    #[default]
    Single,
    /// The orchestrator may start workers.
    Orchestrator,
}

impl Mode {
    /// The word used in config, the store and `/status`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses the stored word; unknown words are `None`.
    pub fn parse(word: &str) -> Option<Mode> {
        word.parse().ok()
    }
}

/// A conversation's settings, changed by commands and kept across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSettings {
    /// Single or orchestrator mode.
    pub mode: Mode,
    /// Whether worker output is shown under the user's message.
    pub verbose: bool,
    /// The default effort for the orchestrator and its workers.
    pub effort: Effort,
    /// The conversation's own model (`/model`), `provider:model`; routing
    /// decides when unset.
    pub model: Option<String>,
    /// `/greedy`: keep going and try several approaches before settling.
    pub greedy: bool,
    /// `/autonomy`: decide rather than ask the user.
    pub autonomy: bool,
}
