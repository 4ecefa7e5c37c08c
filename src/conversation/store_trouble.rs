//! Telling a conversation that its messages cannot be stored (a full disk,
//! a database that is down): at most once every ten minutes, since the
//! platform delivers the message again until it is stored.

use std::time::{Duration, Instant};

use baton_channel::ConversationKey;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

/// The answer to a message that cannot be stored (a full disk, a database
/// that is down); the platform delivers it again later.
pub const CANNOT_STORE: &str = "I can't store messages right now, so I can't answer yet. \
I'll answer once I can; there is no need to send it again.";

/// How often a conversation is told its messages cannot be stored.
const STORE_NOTICE_EVERY: Duration = Duration::from_secs(600);

/// When each conversation was last told its messages cannot be stored.
#[derive(Debug, Default)]
pub(crate) struct StoreTrouble {
    told: DashMap<ConversationKey, Instant>,
}

impl StoreTrouble {
    /// Whether to tell `key` now (and remember that it was told).
    pub fn should_tell(&self, key: &ConversationKey) -> bool {
        let now = Instant::now();
        self.told
            .retain(|_, told| now.duration_since(*told) < STORE_NOTICE_EVERY);
        match self.told.entry(key.clone()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(told) => {
                told.insert(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_hears_of_store_trouble_once() {
        let trouble = StoreTrouble::default();
        let key = ConversationKey::telegram(1, None);
        let other = ConversationKey::telegram(2, None);
        assert!(trouble.should_tell(&key));
        assert!(!trouble.should_tell(&key));
        assert!(trouble.should_tell(&other));
    }
}
