//! `baton check`: validates the config and says plainly what is missing;
//! starts each MCP server once to see that it works.

use std::time::Duration;

use crate::config::{Config, DmPolicy, discord_token, telegram_token, telegram_webhook_secret};
use crate::domain::ModelRef;
use crate::store::Store;
use crate::tools::mcp::{self, McpConfig};

/// One thing `baton check` looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Whether it is fine.
    pub ok: bool,
    /// What was found, in words a user can act on.
    pub text: String,
}

/// Everything `baton check` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// In the order checked.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    fn ok(&mut self, text: impl Into<String>) {
        self.findings.push(Finding {
            ok: true,
            text: text.into(),
        });
    }

    fn problem(&mut self, text: impl Into<String>) {
        self.findings.push(Finding {
            ok: false,
            text: text.into(),
        });
    }

    /// Whether nothing is wrong.
    pub fn passed(&self) -> bool {
        self.findings.iter().all(|f| f.ok)
    }

    /// The report as lines of `ok:` and `problem:`.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for finding in &self.findings {
            let tag = if finding.ok { "ok" } else { "problem" };
            text.push_str(&format!("{tag}: {}\n", finding.text));
        }
        text
    }
}

/// Checks models, providers (keys and reachability), storage, platforms,
/// web search and MCP servers.
pub async fn check(config: &Config) -> CheckReport {
    let mut report = CheckReport::default();
    let roles = [
        ("orchestrator", config.models.orchestrator_model()),
        ("worker", config.models.worker_model()),
    ];
    let mut providers_used = Vec::new();
    let mut checked = Vec::new();
    for (role, model) in roles {
        match model {
            Err(e) => report.problem(format!("{role} model: {e}")),
            Ok(model) => {
                check_model(config, role, &model, &mut report, &mut providers_used);
                checked.push(model);
            }
        }
    }
    // Models that specialties, profiles, the cheap tier or the fallback use.
    for model in config.models.routed().unwrap_or_default() {
        if !checked.contains(&model) {
            check_model(config, "routed", &model, &mut report, &mut providers_used);
        }
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    for name in providers_used {
        let Some(provider) = config.providers.get(&name) else {
            continue;
        };
        match &provider.api_key_env {
            Some(var) if provider.api_key().is_none() => report.problem(format!(
                "provider {name}: no API key: set the environment variable {var}"
            )),
            Some(var) => report.ok(format!("provider {name}: API key found in {var}")),
            None => report.ok(format!(
                "provider {name}: no API key configured (fine for local models)"
            )),
        }
        match http.get(&provider.base_url).send().await {
            Ok(response) => report.ok(format!(
                "provider {name}: {} is reachable (HTTP {})",
                provider.base_url,
                response.status().as_u16()
            )),
            Err(e) => report.problem(format!(
                "provider {name}: {} is unreachable: {}",
                provider.base_url,
                crate::tools::error_chain(&e)
            )),
        }
    }
    match Store::connect(&config.storage.url).await {
        Ok(store) => {
            report.ok(format!(
                "storage: {} opened and migrated",
                redact_url(&config.storage.url)
            ));
            store.close().await;
        }
        Err(e) => report.problem(format!("storage: {}: {e}", redact_url(&config.storage.url))),
    }
    let platforms = [
        (
            "telegram",
            config.telegram.enabled,
            telegram_token(&config.telegram).is_some(),
            &config.telegram.token_env,
        ),
        (
            "discord",
            config.discord.enabled,
            discord_token(&config.discord).is_some(),
            &config.discord.token_env,
        ),
    ];
    for (name, enabled, has_token, token_env) in platforms {
        if !enabled {
            report.ok(format!("{name}: disabled"));
        } else if !has_token {
            report.ok(format!(
                "{name}: enabled but {token_env} is not set, so it will not start"
            ));
        } else {
            report.ok(format!("{name}: token found in {token_env}"));
        }
    }
    let telegram = &config.telegram;
    if telegram.enabled
        && telegram_token(telegram).is_some()
        && telegram.mode == crate::config::TelegramMode::Webhook
    {
        if telegram_webhook_secret(telegram).is_none() {
            report.problem(format!(
                "telegram: webhook mode needs a secret token in {}",
                telegram.webhook_secret_env
            ));
        }
        if !config.server.enabled {
            report.problem("telegram: webhook mode needs [server] enabled".to_owned());
        }
    }
    let discord = &config.discord;
    if discord.enabled && discord_token(discord).is_some() {
        report.ok(format!(
            "discord: {} allowed guilds, {} allowed users, {} DMs, slash commands {}",
            discord.allowed_guilds.len(),
            discord.allowed_users.len(),
            match discord.dm_policy {
                DmPolicy::Open => "open",
                DmPolicy::Allowlist => "allowlisted",
            },
            match discord.dev_guild {
                Some(guild) => format!("global and in dev guild {guild}"),
                None => "global only".to_owned(),
            },
        ));
        if discord.validate().is_err() {
            report.problem("discord: require_mention_in keys must be guild ids".to_owned());
        }
    }
    match config.tools.web_search.as_ref().map(|s| s.status()) {
        None => report.ok("web_search: off (no [tools.web_search])"),
        Some(Ok(text)) => report.ok(text),
        Some(Err(text)) => report.problem(text),
    }
    check_mcp(&config.mcp, &mut report).await;
    report
}

/// Starts each enabled MCP server, lists its tools and stops it again. A
/// server that fails is a problem (`baton run` would skip it).
async fn check_mcp(config: &McpConfig, report: &mut CheckReport) {
    for (name, server) in &config.servers {
        if !server.enabled {
            report.ok(format!("mcp server {name}: disabled"));
        }
    }
    for (name, started) in mcp::start_all(config).await {
        match started {
            Ok(started) => {
                report.ok(format!(
                    "mcp server {name}: started, {} tools",
                    started.tools.len()
                ));
                mcp::stop(name, started.client).await;
            }
            Err(error) => report.problem(format!(
                "mcp server {name}: {error}; baton run will skip it"
            )),
        }
    }
}

fn check_model(
    config: &Config,
    role: &str,
    model: &ModelRef,
    report: &mut CheckReport,
    providers_used: &mut Vec<String>,
) {
    if config.providers.contains_key(&model.provider) {
        report.ok(format!("{role} model: {model}"));
        if !providers_used.contains(&model.provider) {
            providers_used.push(model.provider.clone());
        }
    } else {
        report.problem(format!(
            "{role} model {model}: there is no [providers.{}] section",
            model.provider
        ));
    }
}

/// The storage URL without a password.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://baton:secret@db/baton"),
            "postgres://baton:***@db/baton"
        );
        assert_eq!(
            redact_url("sqlite://data/baton.db"),
            "sqlite://data/baton.db"
        );
    }
}
