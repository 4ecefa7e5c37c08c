//! Slash command interactions: who may use them, and answering each within
//! Discord's 3-second deadline.
//!
//! The engine answers a command by posting through its reply handle with
//! the command's [`Origin`], [`Origin::Interaction`] with its id, and
//! [`Interactions`] keeps, per open interaction,
//! a task holding its token: the first answer that arrives within
//! `defer_after` is the interaction's response (ephemeral); if none has
//! arrived by then the task defers (ephemeral "thinking") and the answer,
//! when it comes, edits the deferred response. Later answers are
//! follow-ups. Interaction answers do not count against the global limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_channel::{ChannelError, Command, DmPolicy, Origin, chunk_text};
use serde_json::{Value, json};
use serenity::all::{CommandInteraction, Permissions};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::inbound::{MANAGERS_ONLY, NOT_ALLOWED};
use crate::outbox::MESSAGE_LIMIT;
use crate::rest::{Endpoint, Rest, RestError};
use crate::settings::DiscordConfig;

/// Discord's "channel message with source" response.
const RESPOND: u8 = 4;
/// Discord's "deferred channel message with source" response.
const DEFER: u8 = 5;
/// The message flag that shows a message to the invoking user only.
const EPHEMERAL: u64 = 1 << 6;
/// How long an interaction's token works for follow-ups (Discord: 15
/// minutes), less a margin.
const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);
/// How long after its answer an interaction still takes more answers.
const LINGER: Duration = Duration::from_secs(30);

/// Whether the interaction's user may use `command` (`None`: a command
/// that did not parse, which changes nothing): `Err` holds the refusal to
/// show.
pub fn check(
    interaction: &CommandInteraction,
    command: Option<&Command>,
    settings: &DiscordConfig,
) -> Result<(), &'static str> {
    let user = interaction.user.id.get();
    let trusted = settings.allowed_users.contains(&user);
    let Some(guild) = interaction.guild_id.map(|g| g.get()) else {
        return if trusted || settings.dm_policy == DmPolicy::Open {
            Ok(())
        } else {
            Err(NOT_ALLOWED)
        };
    };
    if !trusted && !settings.allowed_guilds.contains(&guild) {
        return Err(NOT_ALLOWED);
    }
    if !command.is_some_and(Command::changes_settings) || trusted {
        return Ok(());
    }
    let member = interaction.member.as_deref();
    let manages = member
        .and_then(|m| m.permissions)
        .is_some_and(|p| p.contains(Permissions::MANAGE_GUILD) || p.administrator());
    let has_role = member.is_some_and(|m| {
        m.roles
            .iter()
            .any(|role| settings.allowed_roles.contains(&role.get()))
    });
    if manages || has_role {
        Ok(())
    } else {
        Err(MANAGERS_ONLY)
    }
}

/// One answer for an interaction, and who waits to hear it was delivered.
struct Answer {
    text: String,
    done: Option<oneshot::Sender<Result<(), ChannelError>>>,
}

type Pending = Arc<Mutex<HashMap<u64, mpsc::Sender<Answer>>>>;

/// The open interactions, each with a task that answers it.
pub struct Interactions {
    rest: Arc<Rest>,
    application: u64,
    defer_after: Duration,
    /// Never held across an `.await`.
    pending: Pending,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Interactions {
    /// No open interactions yet.
    pub fn new(rest: Arc<Rest>, application: u64, defer_after: Duration) -> Self {
        Self {
            rest,
            application,
            defer_after,
            pending: Arc::new(Mutex::new(HashMap::new())),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// Opens interaction `id`: from now on it is answered within the
    /// deadline, by the engine's answer or by a deferral. Returns the
    /// origin to hand the engine.
    pub fn open(&self, id: u64, token: String) -> Origin {
        self.start(id, token, None)
    }

    /// Answers interaction `id` at once with `text` (a refusal), without
    /// the engine.
    pub fn refuse(&self, id: u64, token: String, text: &str) {
        self.start(id, token, Some(text));
    }

    /// Starts the task that answers interaction `id`, with its first answer
    /// already waiting when there is one.
    fn start(&self, id: u64, token: String, first: Option<&str>) -> Origin {
        let (tx, rx) = mpsc::channel(8);
        if let Some(text) = first {
            // A new channel has room.
            let _ = tx.try_send(Answer {
                text: text.to_owned(),
                done: None,
            });
        }
        lock(&self.pending).insert(id, tx);
        let answering = Answering {
            rest: self.rest.clone(),
            application: self.application,
            id,
            token,
            pending: self.pending.clone(),
        };
        let defer_after = self.defer_after;
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = answering.run(rx, defer_after) => {}
            }
        });
        Origin::Interaction(id)
    }

    /// Delivers the engine's `text` as interaction `id`'s answer. `None`
    /// when the interaction is no longer open (its token expired, or Baton
    /// restarted): the caller posts in the channel instead.
    pub async fn answer(&self, id: u64, text: &str) -> Option<Result<(), ChannelError>> {
        let sender = lock(&self.pending).get(&id).cloned()?;
        let (done, delivered) = oneshot::channel();
        let answer = Answer {
            text: text.to_owned(),
            done: Some(done),
        };
        sender.send(answer).await.ok()?;
        delivered.await.ok()
    }

    /// Stops answering (open interactions are left to expire).
    pub async fn close(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

fn lock(pending: &Pending) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<Answer>>> {
    pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The task that answers one interaction.
struct Answering {
    rest: Arc<Rest>,
    application: u64,
    id: u64,
    token: String,
    pending: Pending,
}

impl Answering {
    async fn run(self, mut answers: mpsc::Receiver<Answer>, defer_after: Duration) {
        let mut deferred = false;
        // A zero wait defers at once, however fast the answer would be.
        let early = match defer_after.is_zero() {
            true => Err(()),
            false => tokio::time::timeout(defer_after, answers.recv())
                .await
                .map_err(|_| ()),
        };
        let first = match early {
            Ok(first) => first,
            Err(()) => {
                deferred = true;
                let body = json!({"type": DEFER, "data": {"flags": EPHEMERAL}});
                if let Err(error) = self.callback(&body).await {
                    tracing::warn!(error = %error, "could not defer an interaction");
                }
                tokio::time::timeout(TOKEN_LIFETIME, answers.recv())
                    .await
                    .ok()
                    .flatten()
            }
        };
        if let Some(answer) = first {
            let result = self.deliver_first(&answer.text, deferred).await;
            finish(answer, result);
            while let Ok(Some(answer)) = tokio::time::timeout(LINGER, answers.recv()).await {
                let result = self.follow_up(&answer.text).await;
                finish(answer, result);
            }
        }
        lock(&self.pending).remove(&self.id);
    }

    /// The first answer: the response itself (or the edit of the deferred
    /// one), then follow-ups for whatever did not fit.
    async fn deliver_first(&self, text: &str, deferred: bool) -> Result<(), RestError> {
        let pieces = chunk_text(text, MESSAGE_LIMIT);
        let mut pieces = pieces.iter();
        let first = pieces.next().map_or(" ", String::as_str);
        let data = content(first);
        if deferred {
            let endpoint = Endpoint::EditOriginal {
                application: self.application,
                token: &self.token,
            };
            self.rest.call(endpoint, Some(&data)).await?;
        } else {
            self.callback(&json!({"type": RESPOND, "data": data}))
                .await?;
        }
        for piece in pieces {
            self.follow_up(piece).await?;
        }
        Ok(())
    }

    async fn callback(&self, body: &Value) -> Result<Value, RestError> {
        let endpoint = Endpoint::InteractionCallback {
            id: self.id,
            token: &self.token,
        };
        self.rest.call(endpoint, Some(body)).await
    }

    async fn follow_up(&self, text: &str) -> Result<(), RestError> {
        for piece in chunk_text(text, MESSAGE_LIMIT) {
            let endpoint = Endpoint::Followup {
                application: self.application,
                token: &self.token,
            };
            self.rest.call(endpoint, Some(&content(&piece))).await?;
        }
        Ok(())
    }
}

/// Ephemeral message data that pings no one.
fn content(text: &str) -> Value {
    json!({
        "content": text,
        "flags": EPHEMERAL,
        "allowed_mentions": {"parse": []},
    })
}

fn finish(answer: Answer, result: Result<(), RestError>) {
    if let Err(error) = &result {
        tracing::warn!(error = %error, "could not answer an interaction");
    }
    if let Some(done) = answer.done {
        let _ = done.send(result.map_err(RestError::into_channel));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const GUILD: u64 = 7;
    const ROLE: u64 = 77;

    fn settings() -> DiscordConfig {
        DiscordConfig {
            allowed_users: vec![42],
            allowed_guilds: vec![GUILD],
            allowed_roles: vec![ROLE],
            ..DiscordConfig::default()
        }
    }

    fn interaction(
        guild: Option<u64>,
        user: u64,
        roles: &[u64],
        permissions: u64,
    ) -> CommandInteraction {
        let user_json = json!({"id": user.to_string(), "username": "u", "discriminator": "0",
                               "global_name": null, "avatar": null});
        let mut value = json!({
            "id": "1", "application_id": "2", "type": 2,
            "data": {"id": "3", "name": "verbose", "type": 1},
            "channel_id": "4", "token": "t", "version": 1, "locale": "en-US",
            "entitlements": [], "attachment_size_limit": 1,
        });
        match guild {
            Some(guild) => {
                value["guild_id"] = json!(guild.to_string());
                value["member"] = json!({
                    "user": user_json, "deaf": false, "mute": false, "flags": 0,
                    "roles": roles.iter().map(u64::to_string).collect::<Vec<_>>(),
                    "permissions": permissions.to_string(),
                });
            }
            None => value["user"] = user_json,
        }
        serde_json::from_value::<Value>(value.clone())
            .and_then(serde_json::from_value)
            .unwrap()
    }

    #[test]
    fn settings_in_guilds_need_manage_server_an_allowed_role_or_an_allowed_user() {
        let s = settings();
        let change = Command::Verbose(Some(true));
        let look = Command::Verbose(None);
        let check = |i: &CommandInteraction, c: Option<&Command>| check(i, c, &s);
        let member = interaction(Some(GUILD), 5, &[], 0);
        assert_eq!(check(&member, Some(&change)), Err(MANAGERS_ONLY));
        assert_eq!(check(&member, Some(&look)), Ok(()));
        assert_eq!(
            check(&member, None),
            Ok(()),
            "a parse error changes nothing"
        );
        let manager = interaction(Some(GUILD), 5, &[], Permissions::MANAGE_GUILD.bits());
        assert_eq!(check(&manager, Some(&change)), Ok(()));
        let with_role = interaction(Some(GUILD), 5, &[ROLE], 0);
        assert_eq!(check(&with_role, Some(&change)), Ok(()));
        assert_eq!(
            check(&interaction(Some(GUILD), 42, &[], 0), Some(&change)),
            Ok(())
        );
    }

    #[test]
    fn strangers_are_refused_in_other_guilds_and_in_dms() {
        let s = settings();
        let status = Command::Status;
        let other_guild = interaction(Some(8), 5, &[], Permissions::MANAGE_GUILD.bits());
        assert_eq!(check(&other_guild, Some(&status), &s), Err(NOT_ALLOWED));
        assert_eq!(
            check(&interaction(None, 5, &[], 0), None, &s),
            Err(NOT_ALLOWED)
        );
        assert_eq!(
            check(&interaction(None, 42, &[], 0), Some(&status), &s),
            Ok(())
        );
        let mut open = settings();
        open.dm_policy = DmPolicy::Open;
        assert_eq!(
            check(&interaction(None, 5, &[], 0), Some(&status), &open),
            Ok(())
        );
    }
}
