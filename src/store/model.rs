//! The records the store reads and writes.

use baton_channel::{Effort, WorkerId, WorkerStatus};

use crate::domain::{Mode, Usage};

/// Who said a transcript message.
#[derive(strum::IntoStaticStr, strum::EnumString, strum::Display)]
#[strum(serialize_all = "snake_case")]
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
        self.into()
    }

    /// Parses the stored word; unknown words are `None`.
    pub fn parse(word: &str) -> Option<Role> {
        word.parse().ok()
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
    /// Files sent with it (users only).
    pub attachments: Vec<baton_channel::Attachment>,
}

/// How a turn ended.
#[derive(strum::IntoStaticStr, strum::EnumString, strum::Display)]
#[strum(serialize_all = "snake_case")]
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
        self.into()
    }

    /// Parses the stored word; unknown words are `None`.
    pub fn parse(word: &str) -> Option<TurnStatus> {
        word.parse().ok()
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
#[derive(strum::IntoStaticStr, strum::EnumString, strum::Display)]
#[strum(serialize_all = "snake_case")]
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
        self.into()
    }

    /// Parses the stored word; unknown words are `None`.
    pub fn parse(word: &str) -> Option<EventKind> {
        word.parse().ok()
    }
}

/// A turn as stored: what `/status` and the read-only API show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTurn {
    /// Its row id.
    pub id: TurnId,
    /// The user's message it answers, if it answers one.
    pub inbound: Option<MessageId>,
    /// The mode it ran in.
    pub mode: Mode,
    /// The orchestrator's `provider:model`.
    pub model: String,
    /// How it ended, or `Running`. An unknown stored word reads as `Failed`.
    pub status: TurnStatus,
    /// The orchestrator's own token usage (workers' usage is on their rows).
    pub usage: Usage,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When it started (unix milliseconds).
    pub started_at: i64,
    /// When it ended (unix milliseconds), unless it is still running.
    pub finished_at: Option<i64>,
}

/// A worker as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWorker {
    /// Its id within the turn.
    pub worker_id: WorkerId,
    /// The orchestrator's label for it.
    pub label: String,
    /// Its brief (the first prompt).
    pub brief: String,
    /// Its effort, after clamping. An unknown stored word reads as the default.
    pub effort: Effort,
    /// `provider:model` it runs on.
    pub model: String,
    /// Its last recorded status. An unknown stored word reads as `Error`.
    pub status: WorkerStatus,
    /// Its result, once it is done.
    pub result: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Its cumulative token usage.
    pub usage: Usage,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its row id (events are ordered by it).
    pub id: i64,
    /// The turn it belongs to, if any.
    pub turn: Option<TurnId>,
    /// What kind of event. `None` for a word this version does not know.
    pub kind: Option<EventKind>,
    /// Who produced it: `orchestrator`, a worker id, `user` or `system`.
    pub source: String,
    /// Its text.
    pub body: String,
    /// When it was recorded (unix milliseconds).
    pub created_at: i64,
}

/// A project's row id, which users name it by (`/project pause 3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(pub i64);

impl std::fmt::Display for ProjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a project is in its life.
#[derive(strum::IntoStaticStr, strum::EnumString, strum::Display)]
#[strum(serialize_all = "snake_case")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectStatus {
    /// Created, its boss not started yet.
    Planning,
    /// Its boss is working (or will again after a restart).
    Running,
    /// Stopped by `/project pause` or waiting for an answer.
    Paused,
    /// Its boss called `project_complete`.
    Completed,
    /// It could not go on (a budget cap, a model failure).
    Failed,
    /// `/project cancel` stopped it.
    Cancelled,
}

impl ProjectStatus {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses the stored word; unknown words are `None`.
    pub fn parse(word: &str) -> Option<ProjectStatus> {
        word.parse().ok()
    }

    /// Whether the project has ended for good.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ProjectStatus::Completed | ProjectStatus::Failed | ProjectStatus::Cancelled
        )
    }
}

/// A project as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredProject {
    /// Its id.
    pub id: ProjectId,
    /// The conversation it belongs to (and posts in).
    pub key: baton_channel::ConversationKey,
    /// The boss's turn: its tokens, and the row its workers point at.
    pub turn: TurnId,
    /// What it is for.
    pub goal: String,
    /// The plan it was started with, if any.
    pub plan: Option<String>,
    /// Where it is. An unknown stored word reads as `Failed`.
    pub status: ProjectStatus,
    /// Why it paused, failed or was cancelled.
    pub reason: Option<String>,
    /// The boss's summary, once completed.
    pub result: Option<String>,
    /// A question waiting for the user's answer.
    pub question: Option<String>,
    /// The boss's context as JSON.
    pub transcript: String,
    /// Boss rounds so far.
    pub rounds: u64,
    /// The platform message id its posts reply to.
    pub reply_to: Option<String>,
    /// When its outcome was posted, if it was.
    pub posted_at: Option<i64>,
    /// When it was created (unix milliseconds).
    pub created_at: i64,
    /// When it ended, if it did.
    pub finished_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_words_are_snake_case_and_read_back() {
        let words = [
            (Mode::Orchestrator.as_str(), "orchestrator"),
            (Role::Assistant.as_str(), "assistant"),
            (TurnStatus::Cancelled.as_str(), "cancelled"),
            (EventKind::Delegation.as_str(), "delegation"),
            (ProjectStatus::Completed.as_str(), "completed"),
            (WorkerStatus::TimedOut.as_str(), "timed_out"),
        ];
        for (word, expected) in words {
            assert_eq!(word, expected);
        }
        assert_eq!(Mode::parse("single"), Some(Mode::Single));
        assert_eq!(TurnStatus::parse("done"), Some(TurnStatus::Done));
        assert_eq!(EventKind::parse("result"), Some(EventKind::Result));
        assert_eq!(ProjectStatus::parse("paused"), Some(ProjectStatus::Paused));
        assert_eq!(Role::parse("user"), Some(Role::User));
        assert_eq!(Mode::parse("Single"), None, "stored words are exact");
        assert_eq!(TurnStatus::parse(""), None);
        assert_eq!(ProjectStatus::Running.to_string(), "running");
        assert_eq!("HIGH ".parse::<Effort>(), Ok(Effort::High));
        assert!("extreme".parse::<Effort>().is_err());
    }
}
