//! `[budget]`: daily spending limits (what `budget.rs` checks them with is
//! there).

use serde::Deserialize;

/// `[budget]`: daily limits in US dollars (unset means none). Days are UTC.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// Above this, one conversation's orchestrator stops starting workers.
    pub conversation_soft_usd: Option<f64>,
    /// Above this, one conversation gets no more model answers today.
    pub conversation_hard_usd: Option<f64>,
    /// Like `conversation_soft_usd`, for all conversations together.
    pub service_soft_usd: Option<f64>,
    /// Like `conversation_hard_usd`, for all conversations together.
    pub service_hard_usd: Option<f64>,
}

impl BudgetConfig {
    /// Whether any limit is set (otherwise nothing is checked per turn).
    pub fn is_set(&self) -> bool {
        self.conversation_soft_usd.is_some()
            || self.conversation_hard_usd.is_some()
            || self.service_soft_usd.is_some()
            || self.service_hard_usd.is_some()
    }
}
