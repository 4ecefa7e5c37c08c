//! What a newcomer is told at start when nothing can work yet: no platform
//! token set (`baton run` would wait for nothing), or no API key for the
//! orchestrator's model (every turn would fail). Plain words, and what to
//! do about each.

use crate::config::{Config, discord_token, telegram_token};

/// Why the orchestrator's model cannot be called, if it cannot: its
/// provider names a key variable that is not set.
pub fn missing_api_key(config: &Config) -> Option<String> {
    let model = config.models.orchestrator_model().ok()?;
    let provider = config.providers.get(&model.provider)?;
    let var = provider.api_key_env.as_deref()?;
    provider.api_key().is_none().then(|| {
        format!(
            "no API key: the model {model} needs one in the environment variable {var} \
             (export {var}=...), or point [models] orchestrator at a local model"
        )
    })
}

/// The problems `baton run` should say at start (empty: none).
pub fn run_problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    let telegram = config.telegram.enabled && telegram_token(&config.telegram).is_some();
    let discord = config.discord.enabled && discord_token(&config.discord).is_some();
    if !telegram && !discord {
        problems.push(format!(
            "no platform token: set {} (Telegram, from @BotFather) or {} (Discord) and start \
             again; until then no messages arrive. To try Baton without a platform, run `baton chat`",
            config.telegram.token_env, config.discord.token_env
        ));
    }
    problems.extend(missing_api_key(config));
    problems
}

/// Logs [`run_problems`] as warnings.
pub fn warn_at_run(config: &Config) {
    for problem in run_problems(config) {
        tracing::warn!("{problem}");
    }
}
