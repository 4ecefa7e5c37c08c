//! The context a turn's orchestrator sees: the stored transcript as model
//! messages, trimmed to fit the model's context window (a conservative
//! default when the catalog gives none), each earlier message cut to a
//! bounded size; and the actor's copy of the recent transcript, so a turn
//! need not read it back.

use std::borrow::Cow;

use crate::llm::Message;
use crate::store::{Role, StoredMessage};

/// The share of a model's context window the transcript may fill; the rest
/// is left to the instructions, tool definitions, tool results and answer.
const WINDOW_SHARE_PERCENT: u64 = 60;

/// The context window, in tokens, assumed for a model whose catalog entry
/// gives none: small enough for any current model, so that the history of
/// an unknown model is trimmed too.
pub const DEFAULT_CONTEXT_WINDOW: u64 = 32_000;

/// The most characters one earlier message brings into the context (about
/// 5,000 tokens): past it, its head and tail are kept around a
/// [`CUT_MARKER`], so that one huge reply cannot fill the window. The
/// newest message (the one being answered) is never cut.
pub const MESSAGE_CHARS_IN_CONTEXT: usize = 20_000;

/// What stands in for the middle of a message that was cut.
pub const CUT_MARKER: &str = "\n[… cut …]\n";

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

/// `text`, or, past `max_chars` characters, its first and last
/// `max_chars / 2` characters around [`CUT_MARKER`]. Costs about
/// `max_chars` steps, however long `text` is.
fn clip(text: &str, max_chars: usize) -> Cow<'_, str> {
    // At most one character per byte: a text this short is within bounds.
    if text.len() <= max_chars || text.chars().nth(max_chars).is_none() {
        return Cow::Borrowed(text);
    }
    // More than `max_chars` characters: the head and tail do not meet.
    let keep = max_chars / 2;
    let head_end = text
        .char_indices()
        .nth(keep)
        .map_or(text.len(), |(at, _)| at);
    let tail_start = match keep {
        0 => text.len(),
        _ => text
            .char_indices()
            .rev()
            .nth(keep - 1)
            .map_or(text.len(), |(at, _)| at),
    };
    Cow::Owned(format!(
        "{}{CUT_MARKER}{}",
        &text[..head_end],
        &text[tail_start..]
    ))
}

/// `content` followed by a placeholder per attachment of `message`
/// (`[image: photo.jpg, id 57.1]`): the files themselves are given only to
/// the turn that answers their message.
fn with_placeholders<'a>(message: &StoredMessage, content: Cow<'a, str>) -> Cow<'a, str> {
    if message.attachments.is_empty() {
        return content;
    }
    let placeholders: Vec<String> = message
        .attachments
        .iter()
        .enumerate()
        .map(|(index, file)| crate::media::placeholder(message.id, index, file))
        .collect();
    let placeholders = placeholders.join(" ");
    if content.trim().is_empty() {
        Cow::Owned(placeholders)
    } else {
        Cow::Owned(format!("{content}\n{placeholders}"))
    }
}

/// The transcript as model messages; people's messages carry their name,
/// and their files appear as placeholders.
///
/// Every message but the newest is cut to [`MESSAGE_CHARS_IN_CONTEXT`]
/// characters. Then the oldest messages are dropped until the rest fits
/// its share of `context_window` ([`DEFAULT_CONTEXT_WINDOW`] when the
/// catalog gives none); the newest message always stays. A window that then
/// starts with a reply drops it too: every provider wants the context to
/// open with a user message.
pub fn to_context(history: &[StoredMessage], context_window: Option<u64>) -> Vec<Message> {
    let newest = history.len().saturating_sub(1);
    let messages: Vec<Message> = history
        .iter()
        .enumerate()
        .map(|(index, message)| {
            let content = if index == newest {
                Cow::Borrowed(message.content.as_str())
            } else {
                clip(&message.content, MESSAGE_CHARS_IN_CONTEXT)
            };
            let content = with_placeholders(message, content);
            match message.role {
                Role::User => match &message.author {
                    Some(author) => Message::user(format!("{author}: {content}")),
                    None => Message::user(content.into_owned()),
                },
                Role::Assistant => Message::assistant(content.into_owned()),
            }
        })
        .collect();
    let window = context_window.unwrap_or(DEFAULT_CONTEXT_WINDOW);
    let budget = window.saturating_mul(WINDOW_SHARE_PERCENT) / 100;
    let mut used = 0;
    let mut start = messages.len();
    for (index, message) in messages.iter().enumerate().rev() {
        used += estimated_tokens(message);
        if used > budget && start < messages.len() {
            break;
        }
        start = index;
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
            attachments: Vec::new(),
        }
    }

    #[test]
    fn earlier_files_are_placeholders_with_their_ids() {
        let mut photo = stored(5, Role::User, "what is this?");
        photo.attachments.push(baton_channel::Attachment {
            file_id: "f".into(),
            name: "photo.jpg".into(),
            mime: Some("image/jpeg".into()),
            size: Some(10),
            url: None,
            image: true,
        });
        let mut file = stored(7, Role::User, "");
        file.attachments.push(baton_channel::Attachment {
            name: "notes.md".into(),
            image: false,
            ..photo.attachments[0].clone()
        });
        let history = [photo, stored(6, Role::Assistant, "a cat"), file];
        let context = to_context(&history, None);
        assert_eq!(
            context[0],
            Message::user("Ada: what is this?\n[image: photo.jpg, id 5.1]")
        );
        assert_eq!(context[2], Message::user("Ada: [file: notes.md, id 7.1]"));
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

    #[test]
    fn a_model_without_a_context_window_gets_the_default_one() {
        // 40 messages of about 2,000 tokens each: 80,000 tokens, more than
        // the default window's share (60% of 32,000 = 19,200).
        let long = "y".repeat(8_000);
        let history: Vec<StoredMessage> = (1..=40)
            .map(|id| {
                let role = if id % 2 == 1 {
                    Role::User
                } else {
                    Role::Assistant
                };
                stored(id, role, &long)
            })
            .collect();
        let unknown = to_context(&history, None);
        assert_eq!(unknown, to_context(&history, Some(DEFAULT_CONTEXT_WINDOW)));
        // About 2,004 tokens each: 9 fit in 19,200; the ninth from the end
        // is a reply, and the context opens with a user message: 8 stay.
        assert_eq!(unknown.len(), 8);
        let kept: u64 = unknown.iter().map(estimated_tokens).sum();
        assert!(kept <= DEFAULT_CONTEXT_WINDOW * WINDOW_SHARE_PERCENT / 100);
        // The newest message is always the last one kept.
        assert_eq!(unknown.last(), Some(&Message::assistant(long.clone())));
        // A known big window keeps them all.
        assert_eq!(to_context(&history, Some(1_000_000)).len(), 40);
    }

    #[test]
    fn one_huge_earlier_message_is_cut_to_its_head_and_tail() {
        let huge = format!(
            "{}{}{}",
            "h".repeat(30_000),
            "m".repeat(1_000_000),
            "t".repeat(30_000)
        );
        let history = [
            stored(1, Role::User, "write a lot"),
            stored(2, Role::Assistant, &huge),
            stored(3, Role::User, &huge),
        ];
        // Even a window that would fit it all does not get it all.
        let context = to_context(&history, Some(10_000_000));
        assert_eq!(context.len(), 3);
        let half = MESSAGE_CHARS_IN_CONTEXT / 2;
        let cut = format!("{}{CUT_MARKER}{}", "h".repeat(half), "t".repeat(half));
        assert_eq!(context[1], Message::assistant(cut.clone()));
        // The newest message (the one being answered) stays whole.
        assert_eq!(context[2], Message::user(format!("Ada: {huge}")));
        // With the default window, the cut reply fits beside the next
        // question: the whole conversation is still there.
        let history = [
            stored(1, Role::User, "write a lot"),
            stored(2, Role::Assistant, &huge),
            stored(3, Role::User, "and now?"),
        ];
        assert_eq!(
            to_context(&history, None),
            [
                Message::user("Ada: write a lot"),
                Message::assistant(cut),
                Message::user("Ada: and now?"),
            ]
        );
    }

    #[test]
    fn clipping_counts_characters_and_leaves_short_texts_alone() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("ééééé", 5), "ééééé");
        assert_eq!(clip("ééééééé", 4), format!("éé{CUT_MARKER}éé"));
        assert_eq!(clip("abcdefghij", 4), format!("ab{CUT_MARKER}ij"));
    }
}
