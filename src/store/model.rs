//! The records the store reads and writes.

use baton_channel::{Effort, WorkerId};

/// Whether a conversation's orchestrator answers alone or may delegate.
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
        match self {
            Mode::Single => "single",
            Mode::Orchestrator => "orchestrator",
        }
    }

    /// Parses the stored word; unknown words are `None`.
    pub fn parse(word: &str) -> Option<Mode> {
        match word {
            "single" => Some(Mode::Single),
            "orchestrator" => Some(Mode::Orchestrator),
            _ => None,
        }
    }
}

/// A conversation's settings, changed by commands and kept across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationSettings {
    /// Single or orchestrator mode.
    pub mode: Mode,
    /// Whether worker output is shown under the user's message.
    pub verbose: bool,
    /// The default effort for the orchestrator and its workers.
    pub effort: Effort,
}

/// Who said a transcript message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A person in the chat.
    User,
    /// The orchestrator's reply.
    Assistant,
}

impl Role {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// A transcript message's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub i64);

/// A turn's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TurnId(pub i64);

/// One transcript message, as the orchestrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its row id.
    pub id: MessageId,
    /// Who said it.
    pub role: Role,
    /// The author's display name (users only).
    pub author: Option<String>,
    /// What was said.
    pub content: String,
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnStatus {
    /// Still running.
    Running,
    /// It posted its reply.
    Done,
    /// It failed; the user was told why.
    Failed,
    /// `/stop` cancelled it.
    Cancelled,
}

impl TurnStatus {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnStatus::Running => "running",
            TurnStatus::Done => "done",
            TurnStatus::Failed => "failed",
            TurnStatus::Cancelled => "cancelled",
        }
    }
}

/// A worker as the orchestrator started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWorker {
    /// Its id within the turn.
    pub worker_id: WorkerId,
    /// The orchestrator's label for it.
    pub label: String,
    /// Its brief (the first prompt).
    pub brief: String,
    /// Its effort, after clamping.
    pub effort: Effort,
    /// `provider:model` it runs on.
    pub model: String,
}

/// The kinds of entries in the event log (the message bus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The orchestrator handed work to a worker.
    Delegation,
    /// A worker's intermediate output or tool call.
    Progress,
    /// A worker's final result.
    Result,
    /// Something failed.
    Error,
    /// A message in or out of the conversation.
    Message,
}

impl EventKind {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Delegation => "delegation",
            EventKind::Progress => "progress",
            EventKind::Result => "result",
            EventKind::Error => "error",
            EventKind::Message => "message",
        }
    }
}
