//! The short answers every adapter gives by itself, without the engine, to
//! messages it will not hand on: the same words on every platform. Answers
//! that name a platform's own permissions (Telegram's administrators,
//! Discord's Manage Server) stay with that adapter.

/// The answer to a command from someone who may not use the bot.
pub const NOT_ALLOWED: &str = "Sorry, you are not allowed to use this bot here.";

/// The answer to a voice message, a sticker, a video and the like.
pub const CANNOT_READ_YET: &str =
    "I can't read voice messages, stickers or videos yet; please send text, a picture or a file.";
