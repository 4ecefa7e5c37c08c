//! Token usage totals, per model, for `/status`, costs and budgets: input
//! and output tokens, and of the input those read from and written to the
//! providers' prompt caches (priced apart by the catalog).

use baton_channel::ConversationKey;

use super::{Store, StoreError, usage_from_db};
use crate::domain::Usage;

/// Tokens one model used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelUsage {
    /// `provider:model`, as turns and workers record it.
    pub model: String,
    /// Its tokens.
    pub usage: Usage,
}

/// Orchestrator usage per turn plus each worker's, with the model each ran
/// on. `{scope}` narrows to one conversation or none.
/// SUM over BIGINT is NUMERIC in Postgres, which `Any` cannot decode: the
/// totals are cast back to BIGINT.
const BY_MODEL: &str = "SELECT model, CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), \
            CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), \
            CAST(COALESCE(SUM(cached_input_tokens), 0) AS BIGINT), \
            CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) \
     FROM ( \
         SELECT t.model, t.input_tokens, t.output_tokens, t.cached_input_tokens, \
                t.cache_write_tokens FROM turns t \
         WHERE t.started_at >= $1 {scope} \
         UNION ALL \
         SELECT w.model, w.input_tokens, w.output_tokens, w.cached_input_tokens, \
                w.cache_write_tokens FROM workers w \
         JOIN turns t ON t.id = w.turn_id \
         WHERE t.started_at >= $1 {scope} \
     ) AS parts GROUP BY model ORDER BY model";

impl Store {
    /// Token usage of this conversation's turns that started at or after
    /// `since_ms` (unix milliseconds): the orchestrator's usage on each turn
    /// plus the usage of every worker those turns started.
    pub async fn usage_since(
        &self,
        key: &ConversationKey,
        since_ms: i64,
    ) -> Result<Usage, StoreError> {
        let mut total = Usage::default();
        for part in self.usage_by_model_since(Some(key), since_ms).await? {
            total.add(part.usage);
        }
        Ok(total)
    }

    /// Like [`Store::usage_since`], split by model; for one conversation, or
    /// for the whole service when `key` is `None`.
    pub async fn usage_by_model_since(
        &self,
        key: Option<&ConversationKey>,
        since_ms: i64,
    ) -> Result<Vec<ModelUsage>, StoreError> {
        let sql = match key {
            Some(_) => BY_MODEL.replace("{scope}", "AND t.conversation = $2"),
            None => BY_MODEL.replace("{scope}", ""),
        };
        let key = key.map(ConversationKey::to_string);
        let rows = self
            .db
            .run(move |conn| {
                Box::pin(async move {
                    let mut query =
                        sqlx::query_as::<_, (String, i64, i64, i64, i64)>(&sql).bind(since_ms);
                    if let Some(key) = key {
                        query = query.bind(key);
                    }
                    query.fetch_all(conn).await
                })
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(model, input, output, cached, written)| ModelUsage {
                model,
                usage: usage_from_db(input, output, cached, written),
            })
            .collect())
    }
}
