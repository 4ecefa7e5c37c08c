//! Readable names of guild channels and threads ("Guild #channel",
//! "Guild #channel › thread"), learned from what the gateway sends anyway:
//! GUILD_CREATE (the guild's name, its channels and active threads),
//! GUILD_UPDATE/DELETE, CHANNEL_CREATE/UPDATE/DELETE and
//! THREAD_CREATE/UPDATE/DELETE/LIST_SYNC. A guild message's
//! `Inbound::chat_title` comes from here, so the dashboard can list the
//! conversation by its channel; a channel this map does not know gets no
//! name (there is no REST call to ask).
//!
//! Bounded: at most [`CHANNELS`] channels and threads and [`GUILDS`]
//! guilds, the least recently used forgotten first, each name cut to
//! [`NAME_CHARS`] characters. Names are kept in parts (a thread keeps its
//! parent's id), so renaming a guild or a channel renames its threads too.
//!
//! serenity hands every event to its own task, so a rename and a message
//! right after it may be seen in either order: the message then carries
//! the old name, and the next one the new.

use std::sync::{Mutex, MutexGuard, PoisonError};

use hashlink::LruCache;
use serenity::all::{ChannelType, Guild, GuildChannel};

/// Channels and threads remembered at most (a guild can have hundreds of
/// channels and thousands of active threads).
pub const CHANNELS: usize = 20_000;

/// Guilds remembered at most.
pub const GUILDS: usize = 5_000;

/// Longest part of a name kept, in characters (Discord's own limit for
/// guild, channel and thread names is 100).
pub const NAME_CHARS: usize = 100;

/// The names of the guild channels and threads the gateway has shown.
pub struct Names {
    /// A std mutex: held only while the maps are read or changed, never
    /// across an `.await`.
    known: Mutex<Known>,
}

struct Known {
    /// Guild id to its name.
    guilds: LruCache<u64, String>,
    /// Channel or thread id to where it is and what it is called.
    channels: LruCache<u64, Place>,
}

/// One channel or thread.
struct Place {
    guild: u64,
    name: String,
    /// The channel a thread is in (`None` for a channel).
    parent: Option<u64>,
}

impl Default for Names {
    fn default() -> Self {
        Names::with_capacity(GUILDS, CHANNELS)
    }
}

impl Names {
    /// A map holding at most `guilds` guild names and `channels` channel
    /// or thread names.
    pub fn with_capacity(guilds: usize, channels: usize) -> Names {
        Names {
            known: Mutex::new(Known {
                guilds: LruCache::new(guilds),
                channels: LruCache::new(channels),
            }),
        }
    }

    fn known(&self) -> MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// GUILD_CREATE: the guild's name, its channels and its active threads.
    pub fn learn_guild(&self, guild: &Guild) {
        let id = guild.id.get();
        let mut known = self.known();
        known.guilds.insert(id, cut(&guild.name));
        for channel in guild.channels.values().chain(&guild.threads) {
            // The threads of a GUILD_CREATE carry no guild id.
            known.learn(id, channel);
        }
    }

    /// GUILD_UPDATE: the guild's new name.
    pub fn rename_guild(&self, guild: u64, name: &str) {
        self.known().guilds.insert(guild, cut(name));
    }

    /// GUILD_DELETE for a guild the bot left (not an outage): the guild
    /// and its channels are forgotten.
    pub fn forget_guild(&self, guild: u64) {
        let mut known = self.known();
        known.guilds.remove(&guild);
        known.forget_where(|place| place.guild == guild);
    }

    /// CHANNEL_CREATE/UPDATE, THREAD_CREATE/UPDATE/LIST_SYNC: a channel or
    /// thread of `guild` and its current name (the guild is given apart:
    /// not every payload carries it in the channel). Categories hold no messages
    /// and are skipped.
    pub fn learn_channel(&self, guild: u64, channel: &GuildChannel) {
        self.known().learn(guild, channel);
    }

    /// CHANNEL_DELETE or THREAD_DELETE: the channel and its threads are
    /// forgotten.
    pub fn forget_channel(&self, channel: u64) {
        let mut known = self.known();
        known.channels.remove(&channel);
        known.forget_where(|place| place.parent == Some(channel));
    }

    /// The readable name of `channel`, if known: "Guild #channel",
    /// "Guild #channel › thread" (a part not known is left out).
    pub fn title(&self, channel: u64) -> Option<String> {
        let mut known = self.known();
        let place = known.channels.get(&channel)?;
        let (guild, name, parent) = (place.guild, place.name.clone(), place.parent);
        let guild = known.guilds.get(&guild).cloned();
        let title = match parent {
            None => format!("#{name}"),
            Some(parent) => match known.channels.get(&parent) {
                Some(parent) => format!("#{} › {name}", parent.name),
                None if guild.is_some() => format!("› {name}"),
                None => name,
            },
        };
        let title = match guild {
            Some(guild) => format!("{guild} {title}"),
            None => title,
        };
        Some(title)
    }
}

impl Known {
    /// Remembers `channel` of `guild`.
    fn learn(&mut self, guild: u64, channel: &GuildChannel) {
        let parent = match channel.kind {
            ChannelType::Category => return,
            ChannelType::PublicThread | ChannelType::PrivateThread | ChannelType::NewsThread => {
                channel.parent_id.map(|parent| parent.get())
            }
            _ => None,
        };
        let place = Place {
            guild,
            name: cut(&channel.name),
            parent,
        };
        self.channels.insert(channel.id.get(), place);
    }

    /// Forgets every channel or thread for which `gone` holds.
    fn forget_where(&mut self, gone: impl Fn(&Place) -> bool) {
        let ids: Vec<u64> = self
            .channels
            .iter()
            .filter(|(_, place)| gone(place))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.channels.remove(&id);
        }
    }
}

/// `name` without surrounding white space, cut to [`NAME_CHARS`].
fn cut(name: &str) -> String {
    name.trim().chars().take(NAME_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const GUILD: u64 = 7;
    const GENERAL: u64 = 70;
    const PLANS: u64 = 71;

    /// A channel (`kind` 0), category (4) or public thread (11), as the
    /// gateway sends it.
    fn channel(id: u64, kind: u8, name: &str, parent: Option<u64>) -> GuildChannel {
        let channel = json!({
            "id": id.to_string(), "type": kind, "name": name,
            "guild_id": GUILD.to_string(),
            "parent_id": parent.map(|p| p.to_string()),
        });
        serde_json::from_value(channel).unwrap()
    }

    fn guild(name: &str, channels: Vec<Value>, threads: Vec<Value>) -> Guild {
        serde_json::from_value(json!({
            "id": GUILD.to_string(), "name": name, "icon": null, "owner_id": "1",
            "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "roles": [], "emojis": [], "features": [],
            "mfa_level": 0, "system_channel_flags": 0, "premium_tier": 0,
            "preferred_locale": "en-US", "nsfw_level": 0, "stickers": [],
            "premium_progress_bar_enabled": false,
            "joined_at": "2026-01-01T00:00:00.000Z", "large": false, "member_count": 2,
            "voice_states": [], "members": [], "channels": channels, "threads": threads,
            "presences": [], "stage_instances": [], "guild_scheduled_events": [],
        }))
        .unwrap()
    }

    fn lab() -> Names {
        let names = Names::default();
        let category = json!({"id": "69", "type": 4, "name": "Text channels"});
        let general = json!({"id": GENERAL.to_string(), "type": 0, "name": "general",
                             "parent_id": "69"});
        // GUILD_CREATE's threads carry no guild id.
        let plans = json!({"id": PLANS.to_string(), "type": 11, "name": "plans",
                           "parent_id": GENERAL.to_string()});
        names.learn_guild(&guild("Lab", vec![category, general], vec![plans]));
        names
    }

    #[test]
    fn a_guild_names_its_channels_and_threads_but_not_its_categories() {
        let names = lab();
        assert_eq!(names.title(GENERAL).as_deref(), Some("Lab #general"));
        assert_eq!(names.title(PLANS).as_deref(), Some("Lab #general › plans"));
        assert_eq!(names.title(69), None);
        assert_eq!(names.title(12345), None, "an unknown channel has no name");
    }

    #[test]
    fn renames_of_a_guild_or_a_channel_show_in_its_threads() {
        let names = lab();
        names.learn_channel(GUILD, &channel(GENERAL, 0, "news", None));
        assert_eq!(names.title(GENERAL).as_deref(), Some("Lab #news"));
        assert_eq!(names.title(PLANS).as_deref(), Some("Lab #news › plans"));
        names.rename_guild(GUILD, "Workshop");
        names.learn_channel(GUILD, &channel(PLANS, 11, "roadmap", Some(GENERAL)));
        assert_eq!(
            names.title(PLANS).as_deref(),
            Some("Workshop #news › roadmap")
        );
        // A new thread (THREAD_CREATE).
        names.learn_channel(GUILD, &channel(72, 11, "ideas", Some(GENERAL)));
        assert_eq!(names.title(72).as_deref(), Some("Workshop #news › ideas"));
    }

    #[test]
    fn deleted_channels_and_left_guilds_are_forgotten() {
        let names = lab();
        names.forget_channel(GENERAL);
        assert_eq!(names.title(GENERAL), None);
        assert_eq!(names.title(PLANS), None, "its threads go with it");
        let names = lab();
        names.forget_guild(GUILD);
        assert_eq!((names.title(GENERAL), names.title(PLANS)), (None, None));
    }

    #[test]
    fn the_map_is_bounded_and_forgets_the_least_recently_used() {
        let names = Names::with_capacity(2, 3);
        names.rename_guild(GUILD, "Lab");
        for id in 1..=3 {
            names.learn_channel(GUILD, &channel(id, 0, &format!("c{id}"), None));
        }
        // Channel 1 is read, so channel 2 is the least recently used.
        assert_eq!(names.title(1).as_deref(), Some("Lab #c1"));
        names.learn_channel(GUILD, &channel(4, 0, "c4", None));
        assert_eq!(names.title(2), None);
        for id in [1, 3, 4] {
            assert!(names.title(id).is_some(), "{id}");
        }
        // Guilds too: a third pushes out the least recently used.
        names.rename_guild(8, "Other");
        names.rename_guild(9, "Third");
        assert_eq!(names.title(1).as_deref(), Some("#c1"), "the guild is gone");
    }

    #[test]
    fn long_names_are_cut_and_a_thread_without_its_channel_still_has_a_name() {
        let names = Names::default();
        let long = "x".repeat(500);
        names.learn_channel(GUILD, &channel(1, 11, &format!("  {long}  "), Some(2)));
        assert_eq!(names.title(1), Some("x".repeat(NAME_CHARS)));
        names.rename_guild(GUILD, &long);
        let title = names.title(1).unwrap_or_default();
        assert_eq!(title.chars().count(), 2 * NAME_CHARS + 3, "{title}");
    }
}
