//! Platform-neutral types every Baton adapter speaks.
//!
//! An adapter (Telegram, Discord, the terminal) turns platform events into
//! [`Inbound`] messages and parsed [`Command`]s keyed by a
//! [`ConversationKey`], and renders what the conversation actor hands back
//! through the [`Reply`] trait; the engine takes events through
//! [`Dispatch`]. Nothing here knows about agents or models, and nothing
//! here knows about serenity or teloxide.
//!
//! It is also the adapters' toolkit: [`outbox`] is the per-chat send queue
//! every platform posts through (pacing, retries, verbose batching, the
//! order of worker output and reply), given a small [`outbox::Transport`]
//! per platform; [`file_reply`] decides when an answer goes out as a file
//! attachment; [`download`] fetches an attachment's bytes within a size
//! cap; [`mention`] tidies a message once the bot's mention is cut out;
//! [`refusal`] holds the answers every adapter gives by itself;
//! [`DmPolicy`] is the one private-chat rule both adapters' settings read;
//! [`OncePerKey`] logs something once per chat.

mod access;
mod attachment;
pub mod backoff;
mod chunk;
mod command;
mod dispatch;
pub mod download;
mod event;
mod files;
mod health;
mod key;
pub mod mention;
pub mod metrics;
mod once;
pub mod outbox;
pub mod refusal;
mod reply;

pub use access::{DmPolicy, InvalidSetting};
pub use attachment::{Attachment, FileError, Files, WithFiles};
pub use chunk::chunk_text;
pub use command::{
    Command, CommandArg, CommandError, CommandSpec, Effort, ModelChoice, ParseEffortError,
    ProjectCommand, parse_command,
};
pub use dispatch::{Accepted, Dispatch, DispatchError};
pub use event::{WorkerEvent, WorkerEventKind, WorkerId, WorkerStatus};
pub use files::{ANSWER_FILE, FileReply, MAX_FILE_BYTES, MediaOut, OutFile, file_reply};
pub use health::Connection;
pub use key::{ConversationKey, ParseKeyError, Platform};
pub use once::OncePerKey;
pub use reply::{
    Author, CancelSource, Channel, ChannelError, ChannelEvent, Inbound, Origin, PendingCancel,
    Reply, Ticket,
};
