//! Files in Discord messages: a message's attachments (their CDN URL comes
//! with the message), which kinds Baton cannot read yet (voice messages,
//! stickers, audio, video), and their download, bounded in size and only
//! from Discord's CDN or the configured API host.

use baton_channel::download::{check_size, download_bounded};
use baton_channel::{Attachment, FileError, Files};
use serenity::all::Message;

/// The answer to a voice message, a sticker, a video and the like.
pub use baton_channel::refusal::CANNOT_READ_YET;

/// The hosts attachments are downloaded from, besides the API's own.
const CDN_HOSTS: [&str; 2] = ["cdn.discordapp.com", "media.discordapp.net"];

/// The files `message` carries.
pub(crate) fn attachments(message: &Message) -> Vec<Attachment> {
    message
        .attachments
        .iter()
        .map(|file| Attachment {
            file_id: file.id.get().to_string(),
            name: file.filename.clone(),
            image: file
                .content_type
                .as_deref()
                .is_some_and(|mime| mime.starts_with("image/")),
            mime: file.content_type.clone(),
            size: Some(u64::from(file.size)),
            url: Some(file.url.clone()),
        })
        .collect()
}

/// Whether `message` is of a kind Baton cannot read yet: a sticker, or an
/// audio or video file (a voice message is an audio attachment).
pub(crate) fn unreadable(message: &Message) -> bool {
    !message.sticker_items.is_empty()
        || message.attachments.iter().any(|file| {
            file.content_type
                .as_deref()
                .is_some_and(|mime| mime.starts_with("audio/") || mime.starts_with("video/"))
        })
}

/// Downloads attachments from their URLs.
pub struct DiscordFiles {
    client: reqwest::Client,
    /// The configured API's host, also allowed (a local test server).
    api_host: Option<String>,
}

impl DiscordFiles {
    pub(crate) fn new(client: reqwest::Client, api_url: &str) -> Self {
        let api_host = reqwest::Url::parse(api_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned));
        Self { client, api_host }
    }

    fn allowed(&self, url: &reqwest::Url) -> bool {
        let host = url.host_str().unwrap_or_default();
        CDN_HOSTS.contains(&host) || self.api_host.as_deref() == Some(host)
    }
}

#[async_trait::async_trait]
impl Files for DiscordFiles {
    async fn download(
        &self,
        attachment: &Attachment,
        max_bytes: u64,
    ) -> Result<Vec<u8>, FileError> {
        check_size(attachment.size, max_bytes)?;
        let url = attachment
            .url
            .as_deref()
            .and_then(|url| reqwest::Url::parse(url).ok())
            .filter(|url| self.allowed(url))
            .ok_or_else(|| FileError::Gone("no Discord download URL".into()))?;
        download_bounded(&self.client, url, max_bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_fetched_only_from_discord_or_the_api_host() {
        let files = DiscordFiles::new(reqwest::Client::new(), "http://127.0.0.1:9");
        let mut attachment = Attachment {
            file_id: "1".into(),
            name: "a.png".into(),
            mime: Some("image/png".into()),
            size: Some(10),
            url: Some("http://169.254.169.254/latest/meta-data".into()),
            image: true,
        };
        assert!(matches!(
            files.download(&attachment, 100).await,
            Err(FileError::Gone(_))
        ));
        assert!(files.allowed(&reqwest::Url::parse("https://cdn.discordapp.com/a/b").unwrap()));
        assert!(files.allowed(&reqwest::Url::parse("http://127.0.0.1:9/attachments/x").unwrap()));
        attachment.size = Some(1000);
        assert_eq!(
            files.download(&attachment, 100).await,
            Err(FileError::TooLarge { limit: 100 })
        );
    }
}
