//! `conversations.title`: the readable name the dashboard lists a
//! conversation by (a group's or channel's title, as the platform last gave
//! it). The store remembers the titles it wrote, so a message whose chat
//! kept its title costs no statement: one is written the first time a
//! conversation is seen after a start, and when its title changes.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use baton_channel::ConversationKey;

use super::{Store, StoreError};

/// Titles remembered at most; past it the memory starts over (costing one
/// write per conversation again).
const REMEMBERED: usize = 100_000;

/// Longest title stored, in characters (Telegram allows 128, Discord 100).
const MAX_CHARS: usize = 256;

/// The title last written for each conversation.
#[derive(Debug, Default)]
pub(super) struct KnownTitles {
    /// A std mutex: never held across an `.await`.
    titles: Mutex<HashMap<String, String>>,
}

impl KnownTitles {
    /// Whether `title` is what was last written for `key`.
    fn is_current(&self, key: &str, title: &str) -> bool {
        let titles = self.titles.lock().unwrap_or_else(PoisonError::into_inner);
        titles.get(key).is_some_and(|known| known == title)
    }

    fn remember(&self, key: String, title: String) {
        let mut titles = self.titles.lock().unwrap_or_else(PoisonError::into_inner);
        if titles.len() >= REMEMBERED {
            titles.clear();
        }
        titles.insert(key, title);
    }
}

impl Store {
    /// Records the title a platform gave a conversation's chat, unless it
    /// is the one last written (then nothing runs). Blank titles are
    /// ignored; long ones are cut.
    pub async fn note_title(&self, key: &ConversationKey, title: &str) -> Result<(), StoreError> {
        let title: String = title.trim().chars().take(MAX_CHARS).collect();
        let key = key.to_string();
        if title.is_empty() || self.titles.is_current(&key, &title) {
            return Ok(());
        }
        let (row_key, row_title) = (key.clone(), title.clone());
        self.db
            .run(move |conn| {
                Box::pin(async move {
                    sqlx::query("UPDATE conversations SET title = $1 WHERE key = $2")
                        .bind(row_title)
                        .bind(row_key)
                        .execute(conn)
                        .await
                })
            })
            .await?;
        self.titles.remember(key, title);
        Ok(())
    }
}
