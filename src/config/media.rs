//! `[media]`: the limits on files users send (attachments in) and on long
//! answers sent back as files (files out).

use std::time::Duration;

use serde::Deserialize;

/// `[media]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// The largest file a user may send, in bytes (checked against the size
    /// the platform reports before downloading, and while downloading).
    pub max_bytes: u64,
    /// The largest text-like file (or a PDF's extracted text) given to the
    /// model, in bytes.
    pub max_text_bytes: u64,
    /// How long one download may take, in seconds.
    pub download_timeout_secs: u64,
    /// An answer with a code block longer than this many lines is also sent
    /// as a file (0: never).
    pub code_as_file_lines: usize,
    /// An answer that would take more messages than this is also sent as a
    /// file (0: never).
    pub max_pieces: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        let out = baton_channel::MediaOut::default();
        Self {
            max_bytes: 10_000_000,
            max_text_bytes: 200_000,
            download_timeout_secs: 60,
            code_as_file_lines: out.code_as_file_lines,
            max_pieces: out.max_pieces,
        }
    }
}

impl MediaConfig {
    /// The download timeout as a duration.
    pub fn download_timeout(&self) -> Duration {
        Duration::from_secs(self.download_timeout_secs)
    }

    /// The first key with a value that cannot work, if any.
    pub fn invalid_key(&self) -> Option<&'static str> {
        if self.max_bytes == 0 {
            Some("media.max_bytes")
        } else if self.max_text_bytes == 0 {
            Some("media.max_text_bytes")
        } else if self.download_timeout_secs == 0 {
            Some("media.download_timeout_secs")
        } else {
            None
        }
    }

    /// What the adapters send as files.
    pub fn out(&self) -> baton_channel::MediaOut {
        baton_channel::MediaOut {
            code_as_file_lines: self.code_as_file_lines,
            max_pieces: self.max_pieces,
        }
    }
}
