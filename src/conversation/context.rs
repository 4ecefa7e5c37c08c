//! The context a turn's orchestrator sees: the stored transcript as model
//! messages, trimmed to fit the model's context window; and the actor's
//! copy of the recent transcript, so a turn need not read it back.

use crate::llm::Message;
use crate::store::{Role, StoredMessage};

/// The share of a model's context window the transcript may fill; the rest
/// is left to the instructions, tool definitions, tool results and answer.
const WINDOW_SHARE_PERCENT: u64 = 60;

/// The actor's copy of its conversation's recent transcript (since the last
/// reset, at most `history_limit` messages). Loaded from the store on the
/// first turn; then the actor appends each message it answers and each
/// reply it stores, in the order the store got them, since every message of
/// the conversation passes through its one actor. Forgotten (and read again)
/// after a reset or a failed write.
#[derive(Debug, Default)]
pub struct RecentTranscript {
    messages: Option<Vec<StoredMessage>>,
}

impl RecentTranscript {
    /// Whether the copy is there (otherwise read the store).
    pub fn is_loaded(&self) -> bool {
        self.messages.is_some()
    }

    /// Takes what the store returned as the copy.
    pub fn load(&mut self, history: &[StoredMessage]) {
        self.messages = Some(history.to_vec());
    }

    /// Appends a message the store just recorded; the oldest go beyond
    /// `limit`. Does nothing when the copy is not loaded.
    pub fn push(&mut self, message: StoredMessage, limit: usize) {
        if let Some(messages) = &mut self.messages {
            messages.push(message);
            let excess = messages.len().saturating_sub(limit);
            messages.drain(..excess);
        }
    }

    /// The copy, oldest first (empty when not loaded).
    pub fn messages(&self) -> &[StoredMessage] {
        self.messages.as_deref().unwrap_or_default()
    }

    /// Drops the copy; the next turn reads the store.
    pub fn forget(&mut self) {
        self.messages = None;
    }
}

/// A rough token count: about four characters a token, plus framing.
fn estimated_tokens(message: &Message) -> u64 {
    let chars = message.text_len() as u64;
    chars / 4 + 4
}

/// The transcript as model messages; people's messages carry their name.
///
/// With a known `context_window`, the oldest messages are dropped until the
/// rest fits its share of the window (the newest message always stays). A
/// window that then starts with a reply drops it too: every provider wants
/// the context to open with a user message.
pub fn to_context(history: &[StoredMessage], context_window: Option<u64>) -> Vec<Message> {
    let messages: Vec<Message> = history
        .iter()
        .map(|message| match message.role {
            Role::User => match &message.author {
                Some(author) => Message::user(format!("{author}: {}", message.content)),
                None => Message::user(message.content.clone()),
            },
            Role::Assistant => Message::assistant(message.content.clone()),
        })
        .collect();
    let mut start = 0;
    if let Some(window) = context_window {
        let budget = window.saturating_mul(WINDOW_SHARE_PERCENT) / 100;
        let mut used = 0;
        start = messages.len();
        for (index, message) in messages.iter().enumerate().rev() {
            used += estimated_tokens(message);
            if used > budget && start < messages.len() {
                break;
            }
            start = index;
        }
    }
    let roles = history.iter().map(|message| message.role);
    let first_user = roles
        .enumerate()
        .skip(start)
        .find(|(_, role)| *role == Role::User)
        .map_or(messages.len(), |(index, _)| index);
    messages.into_iter().skip(first_user).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MessageId;

    fn stored(id: i64, role: Role, content: &str) -> StoredMessage {
        let author = (role == Role::User).then(|| "Ada".to_owned());
        StoredMessage {
            id: MessageId(id),
            role,
            author,
            content: content.into(),
        }
    }

    #[test]
    fn the_recent_transcript_keeps_the_newest_messages_up_to_the_limit() {
        let mut recent = RecentTranscript::default();
        recent.push(stored(1, Role::User, "lost"), 3);
        assert!(!recent.is_loaded() && recent.messages().is_empty());
        recent.load(&[stored(1, Role::User, "a"), stored(2, Role::Assistant, "b")]);
        recent.push(stored(3, Role::User, "c"), 3);
        recent.push(stored(4, Role::Assistant, "d"), 3);
        let ids: Vec<i64> = recent.messages().iter().map(|m| m.id.0).collect();
        assert_eq!(ids, [2, 3, 4]);
        recent.forget();
        assert!(!recent.is_loaded());
    }

    #[test]
    fn the_context_opens_with_a_user_message() {
        let history = [
            stored(2, Role::Assistant, "cut-off reply"),
            stored(3, Role::User, "hi"),
            stored(4, Role::Assistant, "hello"),
        ];
        assert_eq!(
            to_context(&history, None),
            [Message::user("Ada: hi"), Message::assistant("hello")]
        );
    }

    #[test]
    fn the_oldest_messages_go_when_the_window_is_small() {
        let long = "x".repeat(400); // about 100 tokens
        let history = [
            stored(1, Role::User, &long),
            stored(2, Role::Assistant, &long),
            stored(3, Role::User, &long),
            stored(4, Role::Assistant, &long),
            stored(5, Role::User, "and now?"),
        ];
        // Everything fits a big window.
        assert_eq!(to_context(&history, Some(100_000)).len(), 5);
        // 60% of 600 = 360 tokens: the last three fit (about 218), the
        // fourth from the end would not; the kept window opens with a user
        // message, so the reply at its start goes too.
        let trimmed = to_context(&history, Some(600));
        assert_eq!(trimmed.len(), 3, "{trimmed:?}");
        assert_eq!(trimmed[0], Message::user(format!("Ada: {long}")));
        // A window too small for anything keeps the newest message.
        assert_eq!(
            to_context(&history, Some(10)),
            [Message::user("Ada: and now?")]
        );
    }
}
