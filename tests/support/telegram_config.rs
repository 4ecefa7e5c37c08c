//! The config text most Telegram tests share: no HTTP server, the fake Bot
//! API, one user allowed, fast pacing and polling.

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
