//! Files users send with a message: what the adapter reports about one
//! ([`Attachment`], stored with its message), and how the engine fetches
//! its bytes from the platform ([`Files`]), bounded in size.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::key::ConversationKey;
use crate::reply::{Channel, Reply};

/// One file sent with a message, as its platform describes it. Only this
/// metadata is stored; the bytes are fetched when a turn needs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The platform's id of the file (Telegram `file_id`, Discord
    /// attachment id).
    pub file_id: String,
    /// The file's name (Telegram photos have none: `photo.jpg`).
    pub name: String,
    /// Its MIME type, where the platform gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Its size in bytes, where the platform gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Where it is downloaded from, for platforms that give a URL with the
    /// message (Discord); Telegram finds it with `getFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Whether the platform sent it as a picture (a Telegram photo, a
    /// Discord attachment with an image type).
    #[serde(default)]
    pub image: bool,
}

/// Why a file could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// Larger than the limit (as reported, or while downloading); not
    /// retried.
    #[error("the file is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The platform no longer has it, or refused it; not retried.
    #[error("the file is not available: {0}")]
    Gone(String),
    /// A network failure, a timeout or a 5xx: sending it again may work.
    #[error("the file could not be downloaded: {0}")]
    Transient(String),
}

impl FileError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, FileError::Transient(_))
    }
}

/// A platform's file API as the engine sees it: read-only, it cannot post
/// anything, so workers' attachments may be fetched through it.
#[async_trait::async_trait]
pub trait Files: Send + Sync {
    /// The bytes of `attachment`, at most `max_bytes` of them (a larger
    /// file is [`FileError::TooLarge`], checked before and while
    /// downloading). The caller bounds the time it may take.
    async fn download(&self, attachment: &Attachment, max_bytes: u64)
    -> Result<Vec<u8>, FileError>;
}

/// A [`Channel`] with a platform's [`Files`]: how an adapter offers both.
pub struct WithFiles<C> {
    /// The channel replies go through.
    pub channel: C,
    /// Where attachments are downloaded from.
    pub files: Arc<dyn Files>,
}

impl<C: Channel> Channel for WithFiles<C> {
    fn reply_to(&self, key: &ConversationKey) -> Box<dyn Reply> {
        self.channel.reply_to(key)
    }

    fn files(&self) -> Option<Arc<dyn Files>> {
        Some(self.files.clone())
    }
}
