//! From an attachment to what a model takes: download it (at most
//! `[media] max_bytes`, or `max_text_bytes` for text, within
//! `download_timeout_secs`), check its bytes, and make it an [`Image`] or
//! a fenced block of text. Whatever cannot be read becomes a [`Refusal`]:
//! the plain answer the user gets instead of a turn.

use baton_channel::{Attachment, FileError, Files};

use super::kind::{self, Kind};
use super::{attachment_id, pdf};
use crate::config::MediaConfig;
use crate::llm::models::ModelHandle;
use crate::llm::{Image, Message};
use crate::store::MessageId;

/// One attachment, read.
#[derive(Debug, Clone, PartialEq)]
pub enum Ready {
    /// A picture, for a vision model.
    Image {
        /// Its id in the transcript (`57.1`).
        id: String,
        /// Its file name.
        name: String,
        /// The picture.
        image: Image,
    },
    /// A text file or a PDF's text, as a fenced block headed by its name.
    Text {
        /// Its id in the transcript.
        id: String,
        /// Its file name.
        name: String,
        /// The block the model reads.
        block: String,
    },
}

impl Ready {
    /// Whether it is a picture.
    pub fn is_image(&self) -> bool {
        matches!(self, Ready::Image { .. })
    }

    /// Its id in the transcript.
    pub fn id(&self) -> &str {
        match self {
            Ready::Image { id, .. } | Ready::Text { id, .. } => id,
        }
    }
}

/// The most files one message may carry (Discord's own limit); each is
/// held in memory while its turn runs.
pub const MAX_FILES_PER_MESSAGE: usize = 10;

/// Why a message's files cannot be read, as the user reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// What Baton reads, for the answers that say what it cannot.
const WHAT_I_READ: &str = "I can read pictures (PNG, JPEG, GIF, WebP), text files (text, JSON, CSV, Markdown, source \
     code) and PDFs.";

fn cannot_read(name: &str) -> String {
    format!("I can't read this kind of file ({name}). {WHAT_I_READ}")
}

fn too_large(name: &str, limit: u64, text: bool) -> String {
    let what = if text { "text files" } else { "files" };
    format!(
        "{name} is too large: I can read {what} up to {}.",
        human_size(limit)
    )
}

fn not_downloaded(name: &str) -> String {
    format!("I could not download {name}; please send it again.")
}

/// The answer when `model` cannot see the images a message carries.
pub fn no_vision(model: &ModelHandle) -> String {
    format!(
        "The model answering here ({}) cannot see images. `/model` lists the models that can \
         (marked \"sees images\").",
        model.model
    )
}

/// `bytes` as a short size (`10 MB`, `200 KB`).
fn human_size(bytes: u64) -> String {
    match bytes {
        1_000_000.. => format!("{} MB", bytes / 1_000_000),
        1_000.. => format!("{} KB", bytes / 1_000),
        _ => format!("{bytes} bytes"),
    }
}

/// Reads every attachment of message `message` for `model`. Images are
/// refused up front when the model cannot see them; then the files are
/// read concurrently. Any refusal answers the whole message (every
/// reason is given), so nothing is answered from half of what was sent.
pub async fn read_all(
    config: &MediaConfig,
    files: Option<&dyn Files>,
    message: MessageId,
    attachments: &[Attachment],
    model: &ModelHandle,
) -> Result<Vec<Ready>, Refusal> {
    let images = attachments
        .iter()
        .any(|attachment| kind::expected(attachment) == Kind::Image);
    if images && !model.spec.vision {
        return Err(Refusal(no_vision(model)));
    }
    if attachments.len() > MAX_FILES_PER_MESSAGE {
        return Err(Refusal(format!(
            "Please send at most {MAX_FILES_PER_MESSAGE} files in one message."
        )));
    }
    // Read side by side, so a message's files together take at most one
    // download timeout (plus a PDF's reading).
    let reads = attachments.iter().enumerate().map(|(index, attachment)| {
        read_one(config, files, attachment_id(message, index), attachment)
    });
    let mut ready = Vec::with_capacity(attachments.len());
    let mut refusals = Vec::new();
    for read in futures::future::join_all(reads).await {
        match read {
            Ok(one) => ready.push(one),
            Err(why) => refusals.push(why),
        }
    }
    if refusals.is_empty() {
        Ok(ready)
    } else {
        Err(Refusal(refusals.join("\n")))
    }
}

/// Reads one attachment; the error is the user's answer.
pub(super) async fn read_one(
    config: &MediaConfig,
    files: Option<&dyn Files>,
    id: String,
    attachment: &Attachment,
) -> Result<Ready, String> {
    let name = kind::clean_name(&attachment.name);
    let expected = kind::expected(attachment);
    if expected == Kind::Unsupported {
        return Err(cannot_read(&name));
    }
    let text = expected == Kind::Text;
    let limit = if text {
        config.max_bytes.min(config.max_text_bytes)
    } else {
        config.max_bytes
    };
    if attachment.size.is_some_and(|size| size > limit) {
        return Err(too_large(&name, limit, text));
    }
    let Some(files) = files else {
        return Err(not_downloaded(&name));
    };
    let download =
        tokio::time::timeout(config.download_timeout(), files.download(attachment, limit));
    let bytes = match download.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(FileError::TooLarge { .. })) => return Err(too_large(&name, limit, text)),
        Ok(Err(error)) => {
            tracing::warn!(attachment = %id, error = %error, transient = error.is_transient(), "an attachment could not be downloaded");
            return Err(not_downloaded(&name));
        }
        Err(_elapsed) => {
            tracing::warn!(attachment = %id, timeout_secs = config.download_timeout_secs, "an attachment's download timed out");
            return Err(not_downloaded(&name));
        }
    };
    match expected {
        Kind::Image => match kind::image_type(&bytes) {
            Some(media_type) => Ok(Ready::Image {
                id,
                image: Image::from_bytes(media_type, &bytes),
                name,
            }),
            None => Err(cannot_read(&name)),
        },
        Kind::Text => match String::from_utf8(bytes) {
            Ok(contents) => Ok(Ready::Text {
                block: fenced(&name, &id, &contents),
                id,
                name,
            }),
            Err(_) => Err(cannot_read(&name)),
        },
        Kind::Pdf => {
            if !kind::is_pdf(&bytes) {
                return Err(cannot_read(&name));
            }
            let extracted = tokio::time::timeout(config.download_timeout(), pdf::text(bytes));
            let contents = match extracted.await {
                Ok(Ok(contents)) => contents,
                Err(_elapsed) => {
                    tracing::warn!(attachment = %id, "reading a PDF's text took too long; given up");
                    return Err(format!("I could not read the PDF {name} in time."));
                }
                Ok(Err(error)) => {
                    tracing::info!(attachment = %id, error = %error, "a PDF could not be read");
                    return Err(format!(
                        "I could not read the PDF {name}: it may be damaged."
                    ));
                }
            };
            if contents.trim().is_empty() {
                return Err(format!(
                    "I found no text in {name} (a scanned PDF holds only pictures of its pages)."
                ));
            }
            if contents.len() as u64 > config.max_text_bytes {
                return Err(format!(
                    "{name} has too much text: I can read up to {} of it.",
                    human_size(config.max_text_bytes)
                ));
            }
            Ok(Ready::Text {
                block: fenced(&name, &id, &contents),
                id,
                name,
            })
        }
        Kind::Unsupported => Err(cannot_read(&name)),
    }
}

/// `contents` in a fence longer than any run of backticks in it, headed by
/// the file's name and id.
fn fenced(name: &str, id: &str, contents: &str) -> String {
    let longest = contents
        .split(|c| c != '`')
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let language = kind::extension(name)
        .filter(|e| e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_default();
    let contents = contents.trim_end_matches('\n');
    format!("Contents of {name} (id {id}):\n{fence}{language}\n{contents}\n{fence}")
}

/// Gives the newest message of `context` (the one the turn answers) what
/// was read from its files: the images, and the text blocks after its text.
pub fn attach(context: &mut [Message], ready: &[Ready]) {
    let Some(Message::User { text, images }) = context.last_mut() else {
        return;
    };
    for one in ready {
        match one {
            Ready::Image { image, .. } => images.push(image.clone()),
            Ready::Text { block, .. } => {
                text.push_str("\n\n");
                text.push_str(block);
            }
        }
    }
}

/// A worker's brief with the attachments handed to it: text blocks after
/// the prompt, and the images.
pub fn worker_brief(prompt: &str, ready: &[Ready]) -> Message {
    let mut message = Message::user(prompt);
    if let Message::User { text, .. } = &mut message {
        for one in ready.iter().filter(|one| one.is_image()) {
            if let Ready::Image { name, id, .. } = one {
                text.push_str(&format!("\n[image: {name}, id {id}]"));
            }
        }
    }
    attach(std::slice::from_mut(&mut message), ready);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_is_longer_than_the_backticks_inside() {
        let block = fenced("a.md", "3.1", "look: ```rust\nfn x() {}\n```\n");
        assert!(block.starts_with("Contents of a.md (id 3.1):\n````md\n"));
        assert!(block.ends_with("\n````"));
        assert_eq!(
            fenced("n", "1.1", "plain"),
            "Contents of n (id 1.1):\n```\nplain\n```"
        );
    }

    #[test]
    fn sizes_read_plainly() {
        assert_eq!(human_size(10_000_000), "10 MB");
        assert_eq!(human_size(200_000), "200 KB");
        assert_eq!(human_size(12), "12 bytes");
    }
}
