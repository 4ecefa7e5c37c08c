//! The gateway side: serenity's client (autosharded, with the GUILDS,
//! GUILD_MESSAGES, DIRECT_MESSAGES and MESSAGE_CONTENT intents) and the
//! event handler that turns its events into engine events.
//!
//! Messages go through [`crate::inbound::decide`] and, in order per
//! channel, [`crate::order::Sequencer`]; a guild message carries its
//! channel's readable name from [`Names`], which the guild, channel and
//! thread events keep up to date; slash commands are
//! checked, opened with [`Interactions`] (so they are answered within the
//! deadline) and dispatched as commands. Connection changes (ready,
//! resumed, reconnecting) are logged. serenity reconnects and resumes by
//! itself. A MESSAGE_CREATE seen twice is stored once by the engine
//! (`Accepted::Duplicate`) and not answered again.

use std::sync::Arc;
use std::time::Duration;

use baton_channel::{ChannelEvent, ConversationKey, Dispatch, OncePerKey, Ticket, parse_command};
use serenity::all::{
    CommandInteraction, Context, EventHandler, GatewayIntents, Guild, GuildChannel, Interaction,
    Message, PartialGuild, PartialGuildChannel, Ready, ResumedEvent, ShardStageUpdateEvent,
    ThreadListSyncEvent, UnavailableGuild,
};

use crate::commands::command_text;
use crate::inbound::{Action, BotIdentity, Spot, author_of, decide};
use crate::interaction::{Interactions, check};
use crate::names::Names;
use crate::order::Sequencer;
use crate::outbox::{Outboxes, Outgoing, Target};
use crate::settings::Settings;

/// The intents Baton asks for. GUILDS brings the guild, channel and thread
/// events that name conversations. MESSAGE_CONTENT is privileged: it must
/// be switched on for the application in the developer portal.
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
}

/// The answer to a slash command the engine could not take.
const ENGINE_FAILED: &str = "Sorry, I could not take that command just now; please try again.";

/// Attempts to hand an event to a busy engine before it is given up
/// (gateway events cannot be fetched again).
const DISPATCH_ATTEMPTS: u32 = 5;

/// What the event handler needs.
pub struct Intake {
    pub(crate) me: BotIdentity,
    pub(crate) settings: Arc<Settings>,
    pub(crate) outboxes: Arc<Outboxes>,
    pub(crate) interactions: Arc<Interactions>,
    pub(crate) engine: Arc<dyn Dispatch>,
    /// Keeps each channel's messages in order on their way to the engine.
    pub(crate) order: Sequencer<ChannelEvent>,
    /// Channels whose unanswerable message was already logged at info.
    pub(crate) noted: OncePerKey<u64>,
    /// Guild channels' and threads' readable names.
    pub(crate) names: Names,
}

impl Intake {
    /// Handles one message.
    pub async fn message(&self, message: &Message) {
        match decide(message, &self.me, &self.settings.config) {
            Action::Ignore(why) => {
                tracing::debug!(
                    channel = message.channel_id.get(),
                    message = message.id.get(),
                    why,
                    "message ignored"
                );
            }
            Action::Unanswerable(why) => {
                let channel = message.channel_id.get();
                if self.noted.first(channel) {
                    tracing::info!(
                        channel,
                        message = message.id.get(),
                        why,
                        "message not answered (logged once per channel)"
                    );
                } else {
                    tracing::debug!(
                        channel,
                        message = message.id.get(),
                        why,
                        "message not answered"
                    );
                }
            }
            Action::Answer(spot, text) => self.answer(spot, text),
            Action::Dispatch(event) => {
                let event = self.with_title(event, message);
                let deliver = |event| async move {
                    self.dispatch(event).await;
                };
                self.order
                    .submit(message.channel_id.get(), message.id.get(), event, deliver)
                    .await;
            }
        }
    }

    /// A guild message's event with its channel's readable name, when
    /// known. A DM has none: the dashboard names it by its user.
    fn with_title(&self, mut event: ChannelEvent, message: &Message) -> ChannelEvent {
        if let ChannelEvent::Message(inbound) = &mut event
            && message.guild_id.is_some()
        {
            inbound.chat_title = self.names.title(message.channel_id.get());
        }
        event
    }

    /// Handles one slash command.
    pub async fn command(&self, interaction: &CommandInteraction) {
        let id = interaction.id.get();
        let text = command_text(&interaction.data.name, &interaction.data.options);
        let Some(command) = parse_command(&text, None) else {
            return;
        };
        let token = interaction.token.clone();
        if let Err(refusal) = check(interaction, command.as_ref().ok(), &self.settings.config) {
            self.interactions.refuse(id, token, refusal);
            return;
        }
        let origin = self.interactions.open(id, token);
        let key = ConversationKey::discord(interaction.channel_id.get());
        let nick = interaction.member.as_ref().and_then(|m| m.nick.as_deref());
        let event = ChannelEvent::Command {
            key,
            author: author_of(&interaction.user, nick),
            origin,
            command,
        };
        if !self.dispatch(event).await {
            // Nobody else will answer it: say so rather than "thinking" on.
            let _ = self.interactions.answer(id, ENGINE_FAILED).await;
        }
    }

    /// The adapter's own short answer (a refusal), display only.
    fn answer(&self, spot: Spot, text: &str) {
        let item = Outgoing::Reply {
            target: Target {
                reply_to: Some(spot.message),
            },
            markdown: text.to_owned(),
            done: None,
            ticket: Ticket::default(),
        };
        if !self.outboxes.offer(spot.channel, item) {
            tracing::debug!(channel = spot.channel, "send queue full; answer dropped");
        }
    }

    /// Hands `event` to the engine, trying again while it is busy; returns
    /// whether the engine took it.
    async fn dispatch(&self, event: ChannelEvent) -> bool {
        let key = event.key().clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.engine.dispatch(event.clone()).await {
                Ok(accepted) => {
                    tracing::debug!(conversation = %key, ?accepted, "event dispatched");
                    return true;
                }
                Err(error) if error.transient && attempt < DISPATCH_ATTEMPTS => {
                    tracing::warn!(conversation = %key, error = %error, attempt, "the engine is busy; trying again");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(error) => {
                    tracing::error!(conversation = %key, error = %error, "the engine refused an event; it is dropped");
                    return false;
                }
            }
        }
    }
}

/// serenity's event handler over an [`Intake`].
pub struct Handler {
    pub(crate) intake: Arc<Intake>,
    /// Up while the gateway session is ready (for readiness).
    pub(crate) connection: Arc<baton_channel::Connection>,
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn message(&self, _ctx: Context, message: Message) {
        self.intake.message(&message).await;
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        match interaction {
            Interaction::Command(command) => self.intake.command(&command).await,
            other => tracing::debug!(kind = ?other.kind(), "interaction ignored"),
        }
    }

    async fn guild_create(&self, _ctx: Context, guild: Guild, _is_new: Option<bool>) {
        self.intake.names.learn_guild(&guild);
    }

    async fn guild_update(&self, _ctx: Context, _old: Option<Guild>, new: PartialGuild) {
        self.intake.names.rename_guild(new.id.get(), &new.name);
    }

    async fn guild_delete(&self, _ctx: Context, guild: UnavailableGuild, _full: Option<Guild>) {
        // `unavailable` is an outage: the guild comes back with a
        // GUILD_CREATE. Otherwise the bot left it.
        if !guild.unavailable {
            self.intake.names.forget_guild(guild.id.get());
        }
    }

    async fn channel_create(&self, _ctx: Context, channel: GuildChannel) {
        self.intake
            .names
            .learn_channel(channel.guild_id.get(), &channel);
    }

    async fn channel_update(&self, _ctx: Context, _old: Option<GuildChannel>, new: GuildChannel) {
        self.intake.names.learn_channel(new.guild_id.get(), &new);
    }

    async fn channel_delete(
        &self,
        _ctx: Context,
        channel: GuildChannel,
        _messages: Option<Vec<Message>>,
    ) {
        self.intake.names.forget_channel(channel.id.get());
    }

    async fn thread_create(&self, _ctx: Context, thread: GuildChannel) {
        self.intake
            .names
            .learn_channel(thread.guild_id.get(), &thread);
    }

    async fn thread_update(&self, _ctx: Context, _old: Option<GuildChannel>, new: GuildChannel) {
        self.intake.names.learn_channel(new.guild_id.get(), &new);
    }

    async fn thread_delete(
        &self,
        _ctx: Context,
        thread: PartialGuildChannel,
        _full: Option<GuildChannel>,
    ) {
        self.intake.names.forget_channel(thread.id.get());
    }

    async fn thread_list_sync(&self, _ctx: Context, sync: ThreadListSyncEvent) {
        for thread in &sync.threads {
            self.intake.names.learn_channel(sync.guild_id.get(), thread);
        }
    }

    async fn ready(&self, ctx: Context, ready: Ready) {
        tracing::info!(
            bot = %ready.user.name,
            shard = ctx.shard_id.0,
            guilds = ready.guilds.len(),
            "connected to the Discord gateway"
        );
        self.connection.up();
    }

    async fn resume(&self, ctx: Context, _event: ResumedEvent) {
        tracing::info!(shard = ctx.shard_id.0, "Discord gateway session resumed");
        self.connection.up();
    }

    async fn shard_stage_update(&self, _ctx: Context, event: ShardStageUpdateEvent) {
        tracing::info!(
            shard = event.shard_id.0,
            from = %event.old,
            to = %event.new,
            "Discord gateway connection stage changed"
        );
        if event.new == serenity::gateway::ConnectionStage::Connected {
            self.connection.up();
        } else {
            self.connection.down();
        }
    }
}
