//! The context a turn's orchestrator sees: the stored transcript as model
//! messages, trimmed to fit the model's context window.

use crate::llm::Message;
use crate::store::{Role, StoredMessage};

/// The share of a model's context window the transcript may fill; the rest
/// is left to the instructions, tool definitions, tool results and answer.
const WINDOW_SHARE_PERCENT: u64 = 60;

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
