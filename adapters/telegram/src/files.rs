//! Files in Telegram messages: which attachments a message carries (a
//! photo at its largest size, a document), which kinds Baton cannot read
//! yet (voice, stickers, video), and their download through the Bot API:
//! `getFile`, then `{api_url}/file/bot<token>/<file_path>`, bounded in size.

use baton_channel::download::{check_size, download_bounded};
use baton_channel::{Attachment, FileError, Files};
use teloxide::Bot;
use teloxide::prelude::Requester;
use teloxide::types::{FileId, Message};

use crate::api::Failure;

/// The answer to a voice message, a sticker, a video and the like.
pub use baton_channel::refusal::CANNOT_READ_YET;

/// The files `message` carries: its photo (the largest size Telegram
/// offers) or its document.
pub(crate) fn attachments(message: &Message) -> Vec<Attachment> {
    let mut found = Vec::new();
    if let Some(largest) = message.photo().and_then(|sizes| {
        sizes
            .iter()
            .max_by_key(|s| u64::from(s.width) * u64::from(s.height))
    }) {
        found.push(Attachment {
            file_id: largest.file.id.0.clone(),
            name: "photo.jpg".into(),
            mime: Some("image/jpeg".into()),
            size: known_size(largest.file.size),
            url: None,
            image: true,
        });
    }
    if let Some(document) = message.document() {
        let mime = document.mime_type.as_ref().map(ToString::to_string);
        found.push(Attachment {
            file_id: document.file.id.0.clone(),
            name: document
                .file_name
                .clone()
                .filter(|name| !name.trim().is_empty())
                .unwrap_or_else(|| "file".into()),
            image: mime.as_deref().is_some_and(|m| m.starts_with("image/")),
            mime,
            size: known_size(document.file.size),
            url: None,
        });
    }
    found
}

/// Whether `message` is of a kind Baton cannot read yet.
pub(crate) fn unreadable(message: &Message) -> bool {
    message.voice().is_some()
        || message.sticker().is_some()
        || message.audio().is_some()
        || message.video().is_some()
        || message.video_note().is_some()
        || message.animation().is_some()
}

/// teloxide reads a missing `file_size` as `u32::MAX`.
fn known_size(size: u32) -> Option<u64> {
    (size != u32::MAX).then_some(u64::from(size))
}

/// Downloads attachments through the Bot API.
pub struct TelegramFiles {
    bot: Bot,
}

impl TelegramFiles {
    pub(crate) fn new(bot: Bot) -> Self {
        Self { bot }
    }

    /// `{api_url}/file/bot<token>/<file_path>`.
    fn file_url(&self, path: &str) -> Result<reqwest::Url, FileError> {
        let mut url = self.bot.api_url();
        url.path_segments_mut()
            .map_err(|()| FileError::Gone("the API URL cannot take a path".into()))?
            .pop_if_empty()
            .push("file")
            .push(&format!("bot{}", self.bot.token()))
            .extend(path.split('/').filter(|s| !s.is_empty() && *s != ".."));
        Ok(url)
    }
}

#[async_trait::async_trait]
impl Files for TelegramFiles {
    async fn download(
        &self,
        attachment: &Attachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, FileError> {
        check_size(attachment.size, max_bytes)?;
        let file = self
            .bot
            .get_file(FileId(attachment.file_id.clone()))
            .await
            .map_err(
                |error| match Failure::from_request(&error, self.bot.token()) {
                    failure if failure.is_transient() => FileError::Transient(failure.to_string()),
                    failure => FileError::Gone(failure.to_string()),
                },
            )?;
        check_size(known_size(file.meta.size), max_bytes)?;
        let url = self.file_url(&file.path)?;
        download_bounded(self.bot.client(), url, max_bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_url_stays_under_the_api_url() {
        let api = reqwest::Url::parse("http://127.0.0.1:8081/").unwrap();
        let files = TelegramFiles::new(Bot::new("123:abc").set_api_url(api));
        let url = files.file_url("photos/../../file_1.jpg").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8081/file/bot123:abc/photos/file_1.jpg"
        );
    }
}
