//! The guild the fake Discord's gateway announces to a bot that asked for
//! the GUILDS intent: its GUILD_CREATE (the guild, a category, the text
//! channel and its active thread, with every field serenity 0.12.5's
//! `Guild` requires) and the CHANNEL_UPDATE Discord sends when a channel
//! is renamed.

use serde_json::{Value, json};

use super::fake_discord::{BOT_ID, CHANNEL, GUILD, THREAD, user_json};

/// The guild's name.
pub const GUILD_NAME: &str = "Baton Lab";
/// [`CHANNEL`]'s name.
pub const CHANNEL_NAME: &str = "general";
/// [`THREAD`]'s name.
pub const THREAD_NAME: &str = "plans";
/// The category [`CHANNEL`] is in.
const CATEGORY: u64 = 7050;

/// A text channel of the guild, as CHANNEL_CREATE/UPDATE carry it.
pub fn text_channel(id: u64, name: &str) -> Value {
    json!({
        "id": id.to_string(), "type": 0, "guild_id": GUILD.to_string(),
        "name": name, "position": 0, "parent_id": CATEGORY.to_string(),
        "permission_overwrites": [], "topic": null, "nsfw": false,
        "last_message_id": null, "rate_limit_per_user": 0, "flags": 0,
    })
}

/// The GUILD_CREATE payload: as Discord sends it, its channels and
/// threads carry no `guild_id`.
pub fn guild_create() -> Value {
    let category = json!({
        "id": CATEGORY.to_string(), "type": 4, "name": "Text channels",
        "position": 0, "parent_id": null, "permission_overwrites": [], "flags": 0,
    });
    let mut channel = text_channel(CHANNEL, CHANNEL_NAME);
    if let Some(channel) = channel.as_object_mut() {
        channel.remove("guild_id");
    }
    let thread = json!({
        "id": THREAD.to_string(), "type": 11, "name": THREAD_NAME,
        "parent_id": CHANNEL.to_string(), "owner_id": "42",
        "last_message_id": null, "message_count": 3, "member_count": 2,
        "rate_limit_per_user": 0, "flags": 0, "total_message_sent": 3,
        "thread_metadata": {
            "archived": false, "auto_archive_duration": 1440,
            "archive_timestamp": "2026-01-01T00:00:00.000Z", "locked": false,
        },
    });
    let me = json!({
        "user": user_json(BOT_ID, true), "roles": [],
        "joined_at": "2026-01-01T00:00:00.000Z", "deaf": false, "mute": false, "flags": 0,
    });
    let mut guild = json!({
        "id": GUILD.to_string(), "name": GUILD_NAME, "icon": null, "icon_hash": null,
        "splash": null, "discovery_splash": null, "owner_id": "42",
        "afk_channel_id": null, "afk_timeout": 300,
        "widget_enabled": false, "widget_channel_id": null,
        "verification_level": 1, "default_message_notifications": 1,
        "explicit_content_filter": 0, "roles": [], "emojis": [], "features": [],
        "mfa_level": 0, "application_id": null, "system_channel_id": null,
        "system_channel_flags": 0, "rules_channel_id": null,
        "max_presences": null, "max_members": 500000, "vanity_url_code": null,
        "description": null, "banner": null, "premium_tier": 0,
        "premium_subscription_count": 0, "preferred_locale": "en-US",
        "public_updates_channel_id": null, "max_video_channel_users": 25,
        "nsfw_level": 0, "stickers": [], "premium_progress_bar_enabled": false,
        "safety_alerts_channel_id": null,
    });
    // GUILD_CREATE's own fields (one `json!` for all is too deep a macro).
    let created = json!({
        "joined_at": "2026-01-01T00:00:00.000Z", "large": false,
        "unavailable": false, "member_count": 3, "voice_states": [],
        "members": [me], "channels": [category, channel], "threads": [thread],
        "presences": [], "stage_instances": [], "guild_scheduled_events": [],
    });
    if let (Some(guild), Value::Object(created)) = (guild.as_object_mut(), created) {
        guild.extend(created);
    }
    guild
}
