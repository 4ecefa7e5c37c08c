//! Long polling: our own `getUpdates` loop, so that an update is confirmed
//! (the next offset asked for) only after the engine has stored it.
//!
//! Each update is handled in order; the offset moves past it only once it
//! is handled. An answer teloxide cannot read as a whole (one update with
//! a lone UTF-16 surrogate, or one that is malformed, fails all of it) is
//! read update by update by [`decode::batch`]: an update that still cannot
//! be read is logged with its id and confirmed, the others are handled as
//! usual. A transient failure to store stops the batch, waits, and
//! asks again from the same offset, so nothing is lost; an update that
//! comes again (after a restart or a retry) is a duplicate to the engine
//! and is not answered twice.

use std::sync::Arc;
use std::time::Duration;

use teloxide::payloads::GetUpdatesSetters;
use teloxide::prelude::Requester;
use teloxide::types::AllowedUpdate;
use teloxide::{Bot, RequestError};
use tokio_util::sync::CancellationToken;

use crate::api::{Failure, backoff};
use crate::decode::{self, Unreadable};
use crate::inbound::Intake;

/// The update kinds the bot asks for.
pub(crate) const ALLOWED_UPDATES: [AllowedUpdate; 2] =
    [AllowedUpdate::Message, AllowedUpdate::EditedMessage];

/// Polls until `shutdown` is cancelled.
pub(crate) async fn poll(
    bot: Bot,
    intake: Arc<Intake>,
    timeout: Duration,
    shutdown: CancellationToken,
) {
    let timeout_secs = u32::try_from(timeout.as_secs()).unwrap_or(10);
    let mut offset: i32 = 0;
    let mut failures: u32 = 0;
    let mut conflicts: u32 = 0;
    loop {
        let request = bot
            .get_updates()
            .offset(offset)
            .timeout(timeout_secs)
            .allowed_updates(ALLOWED_UPDATES);
        let answer = tokio::select! {
            () = shutdown.cancelled() => return,
            answer = request.into_future() => answer,
        };
        let answer = match answer {
            // One update teloxide cannot read fails the whole answer: read
            // it again update by update, so that only that one is skipped.
            Err(RequestError::InvalidJson { source, raw }) => match decode::batch(&raw) {
                Ok(updates) => {
                    tracing::warn!(
                        bytes = raw.len(),
                        error = %decode::describe(&source),
                        "getUpdates answer unreadable as a whole; read update by update"
                    );
                    Ok(updates)
                }
                Err(_) => Err(RequestError::InvalidJson { source, raw }),
            },
            answer => answer.map(|updates| updates.into_iter().map(Ok).collect()),
        };
        let pause = match answer {
            Ok(updates) => {
                intake.connection.succeeded();
                failures = 0;
                conflicts = 0;
                let mut pause = None;
                let before = offset;
                let delivered = !updates.is_empty();
                for update in updates {
                    let update = match update {
                        Ok(update) => update,
                        Err(unreadable) => {
                            skip(&unreadable, &mut offset);
                            continue;
                        }
                    };
                    let id = update.id.0;
                    let handled = tokio::select! {
                        () = shutdown.cancelled() => return,
                        handled = intake.handle(update) => handled,
                    };
                    match handled {
                        Ok(()) => offset = next_offset(id),
                        Err(error) => {
                            // Not confirmed: it comes again with the next poll.
                            tracing::warn!(update = id, error = %error, "cannot take an update now; will retry");
                            failures += 1;
                            pause = Some(backoff(failures));
                            break;
                        }
                    }
                }
                if pause.is_none() && delivered && offset == before {
                    // Only updates without a readable id: nothing can be
                    // confirmed until a later update comes; do not ask
                    // again at once.
                    failures += 1;
                    pause = Some(backoff(failures));
                }
                pause
            }
            Err(error) => match Failure::from_request(&error, bot.token()) {
                Failure::Conflict => {
                    conflicts += 1;
                    if conflicts == 1 || conflicts.is_multiple_of(20) {
                        tracing::error!(attempts = conflicts, "{}", Failure::Conflict);
                    }
                    Some(backoff(conflicts.min(4)))
                }
                Failure::RetryAfter(wait) => Some(wait),
                failure => {
                    failures += 1;
                    tracing::warn!(error = %failure, attempt = failures, "getUpdates failed; retrying");
                    Some(backoff(failures))
                }
            },
        };
        if let Some(pause) = pause {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Logs an update that cannot be read and confirms it (moves `offset` past
/// it) when its id is known; one without an id is passed by the next
/// update that is confirmed.
fn skip(unreadable: &Unreadable, offset: &mut i32) {
    match unreadable.id {
        Some(id) => {
            tracing::warn!(update = id, error = %unreadable.reason, "update cannot be read; skipped");
            *offset = (*offset).max(next_offset(id));
        }
        None => {
            tracing::warn!(error = %unreadable.reason, "update without a readable update_id cannot be read; skipped");
        }
    }
}

/// The offset that confirms update `id` and everything before it.
fn next_offset(id: u32) -> i32 {
    i32::try_from(id).map_or(i32::MAX, |id| id.saturating_add(1))
}
