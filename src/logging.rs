//! Logging: `[log] format` (`pretty` lines or tracing-subscriber's JSON)
//! and `[log] level` (a tracing filter), with `RUST_LOG` winning over the
//! level. Logs go to stderr. A turn's lines carry its span (`turn`, with
//! the conversation key and the turn id; see `conversation/actor.rs`).

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. `chatting` (`baton chat`) keeps the
/// terminal at errors only unless `RUST_LOG` says otherwise, so that log
/// lines do not land in the middle of the conversation.
pub fn init(config: &LogConfig, chatting: bool) {
    let level = if chatting {
        "error"
    } else {
        config.level.as_str()
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match config.format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
