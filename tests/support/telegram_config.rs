//! The config text most Telegram tests share: no HTTP server, the fake Bot
//! API, one user allowed, fast pacing and polling.

use baton::config::Config;
use secrecy::SecretString;

use super::bot::test_config;
use super::fake_llm::{FakeLlm, Wire};
use super::fake_telegram::FakeTelegram;

/// `[server]` off and `[telegram]` pointed at `telegram`, allowing `user`,
/// with `extra` appended (more sections, or more `[telegram]` keys if it
/// starts with none).
pub fn telegram_only(telegram: &FakeTelegram, user: u64, extra: &str) -> String {
    format!(
        r#"
[server]
enabled = false

[telegram]
api_url = "{api}"
allowed_users = [{user}]
min_send_interval_ms = 1
poll_timeout_secs = 1

{extra}
"#,
        api = telegram.api_url()
    )
}

/// The whole config of a service on `telegram` (see [`telegram_only`])
/// with the fake model on `wire`, its database at `db`, and the bot token
/// set, ready for `App::spawn`.
pub fn telegram_config(
    telegram: &FakeTelegram,
    user: u64,
    llm: &FakeLlm,
    wire: Wire,
    db: &std::path::Path,
    extra: &str,
) -> Config {
    let mut config = test_config(llm, wire, db, &telegram_only(telegram, user, extra));
    config.telegram.token = Some(SecretString::from("123456:TEST-TOKEN"));
    config
}
