//! Files users send (attachments in): the `[media]` limits, what kind of
//! file an attachment is, reading it into something a model takes (an
//! image, or text in a fenced block), and the turn's attachments by id so
//! the orchestrator can hand them to workers.
//!
//! - `config.rs`: `[media]` (also the files-out keys).
//! - `kind.rs`: image, text-like, PDF or unsupported, by type, name and
//!   the bytes' own signature.
//! - `read.rs`: download (bounded in size and time) and turn the bytes into
//!   [`Ready`] content, or a [`Refusal`] the user reads.
//! - `pdf.rs`: a PDF's text (pdf-extract, off the async threads).
//! - `shelf.rs`: [`Shelf`], the attachments a turn can see, by id.

mod kind;
mod pdf;
mod read;
mod shelf;

pub use kind::Kind;
pub use read::{Ready, Refusal, attach, read_all, worker_brief};
pub use shelf::{MAX_PER_WORKER, Shelf};

use baton_channel::Attachment;

use crate::store::MessageId;

/// The id the model sees for attachment `index` (0-based) of message
/// `message`: `57.1` is the first file of message 57.
pub fn attachment_id(message: MessageId, index: usize) -> String {
    format!("{}.{}", message.0, index + 1)
}

/// How an attachment appears in the transcript the model reads:
/// `[image: photo.jpg, id 57.1]` or `[file: notes.md, id 57.2]`. Earlier
/// attachments stay placeholders, so a long history does not resend them.
pub fn placeholder(message: MessageId, index: usize, attachment: &Attachment) -> String {
    let what = if attachment.image { "image" } else { "file" };
    format!(
        "[{what}: {}, id {}]",
        kind::clean_name(&attachment.name),
        attachment_id(message, index)
    )
}
