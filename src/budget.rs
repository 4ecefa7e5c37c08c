//! What conversations and the service spent today, and the daily budgets
//! that limit it: above a soft limit orchestrator mode falls back to single
//! mode (with a notice); above a hard cap the bot says so instead of calling
//! a model.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use baton_channel::ConversationKey;

use crate::config::{BudgetConfig, ModelsConfig};
use crate::domain::{ModelRef, Usage};
use crate::store::{ModelUsage, Store, StoreError};

/// Tokens and dollars spent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spend {
    /// Tokens, all models together.
    pub usage: Usage,
    /// US dollars at the catalog's prices.
    pub usd: f64,
}

impl Spend {
    /// Prices `parts` with the catalog (models without prices cost nothing).
    pub fn of(parts: &[ModelUsage], models: &ModelsConfig) -> Spend {
        let mut spend = Spend::default();
        for part in parts {
            spend.usage.add(part.usage);
            if let Ok(model) = ModelRef::from_str(&part.model) {
                spend.usd += models.spec(&model).cost(part.usage);
            }
        }
        spend
    }
}

/// Tokens as `/status`, budget answers and project outcomes show them, with
/// the cached ones apart: `1200 in (800 cached, 100 cache writes) / 50 out
/// tokens` (cache writes only when there were any).
pub fn token_summary(usage: Usage) -> String {
    let writes = match usage.cache_write_tokens {
        0 => String::new(),
        n => format!(", {n} cache writes"),
    };
    format!(
        "{} in ({} cached{writes}) / {} out tokens",
        usage.input_tokens, usage.cached_input_tokens, usage.output_tokens
    )
}

/// The tokens one turn has used so far, per model: the orchestrator's and
/// its workers' calls add to it as they finish, so `/status` can show a
/// running turn's cost.
#[derive(Debug, Default)]
pub struct UsageMeter {
    /// A std mutex: held only to add or copy, never across an `.await`.
    by_model: Mutex<BTreeMap<String, Usage>>,
    /// The orchestrator's own calls (it observes through this meter;
    /// workers add with [`UsageMeter::add`]).
    orchestrator: Mutex<Usage>,
}

impl UsageMeter {
    /// Adds one model call's tokens.
    pub fn add(&self, model: &ModelRef, usage: Usage) {
        let mut by_model = self.by_model.lock().unwrap_or_else(PoisonError::into_inner);
        by_model.entry(model.to_string()).or_default().add(usage);
    }

    /// The orchestrator's own tokens so far (also when its turn failed or
    /// was stopped, so that budgets count every call).
    pub fn orchestrator(&self) -> Usage {
        *self
            .orchestrator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// What was used so far, per model.
    pub fn snapshot(&self) -> Vec<ModelUsage> {
        let by_model = self.by_model.lock().unwrap_or_else(PoisonError::into_inner);
        by_model
            .iter()
            .map(|(model, usage)| ModelUsage {
                model: model.clone(),
                usage: *usage,
            })
            .collect()
    }
}

/// The orchestrator's agent loop observes through the meter.
#[async_trait::async_trait]
impl crate::agent::AgentObserver for UsageMeter {
    async fn on_usage(&self, model: &ModelRef, usage: Usage) {
        self.add(model, usage);
        self.orchestrator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(usage);
    }
}

/// What the budgets allow for the next turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Allowance {
    /// Anything.
    Full,
    /// Single mode only; the text says why.
    SingleOnly(String),
    /// No model call; the text is the answer.
    Refused(String),
}

/// Checks today's spending of `key` and of the service against `budget`.
pub async fn allowance(
    store: &Store,
    models: &ModelsConfig,
    budget: &BudgetConfig,
    key: &ConversationKey,
) -> Result<Allowance, StoreError> {
    if !budget.is_set() {
        return Ok(Allowance::Full);
    }
    let today = start_of_today_ms();
    let conversation = Spend::of(&store.usage_by_model_since(Some(key), today).await?, models);
    let needs_service = budget.service_soft_usd.is_some() || budget.service_hard_usd.is_some();
    let service = if needs_service {
        Spend::of(&store.usage_by_model_since(None, today).await?, models)
    } else {
        Spend::default()
    };
    let over = |spent: f64, limit: Option<f64>| limit.filter(|limit| spent >= *limit);
    let spent = |spend: &Spend| format!("${:.2}, {}", spend.usd, token_summary(spend.usage));
    if let Some(limit) = over(conversation.usd, budget.conversation_hard_usd) {
        return Ok(Allowance::Refused(format!(
            "This conversation has used its daily budget (${limit:.2}; today: {}); I can answer again after midnight UTC.",
            spent(&conversation)
        )));
    }
    if let Some(limit) = over(service.usd, budget.service_hard_usd) {
        return Ok(Allowance::Refused(format!(
            "The bot has used its daily budget (${limit:.2}); it can answer again after midnight UTC."
        )));
    }
    if let Some(limit) = over(conversation.usd, budget.conversation_soft_usd) {
        return Ok(Allowance::SingleOnly(format!(
            "Today's spending passed the ${limit:.2} budget (today: {}), so I answer without workers.",
            spent(&conversation)
        )));
    }
    if let Some(limit) = over(service.usd, budget.service_soft_usd) {
        return Ok(Allowance::SingleOnly(format!(
            "Today's spending passed the ${limit:.2} budget, so I answer without workers."
        )));
    }
    Ok(Allowance::Full)
}

/// Midnight UTC today, in unix milliseconds.
pub fn start_of_today_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    now - now.rem_euclid(86_400_000)
}
