//! The model <-> tool loop shared by the orchestrator and its workers.
//!
//! One round is a model call, then every tool call of that round run
//! concurrently, then their results appended; rounds repeat until the model
//! answers with text alone or the round limit is reached. Tool failures of
//! any kind go back to the model as error results: they never end the loop.
//! Only provider errors (after the caller's retries) and the round limit do.

mod limiter;

pub use limiter::{CallPermit, ModelCallLimiter, Priority};

use futures::future::join_all;

use crate::config::ModelRef;
use crate::llm::models::ModelHandle;
use crate::llm::retry::{RetryPolicy, with_retry};
use crate::llm::{
    AssistantMessage, CompletionRequest, Effort, Message, ProviderError, ToolCall, ToolResult,
    Usage,
};
use crate::tools::{ToolError, Toolbox};

/// Why an agent loop ended without an answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentError {
    /// The model call failed (after retries, where the caller allows them).
    /// Transient when the provider error is.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Permanent: the model kept calling tools past the round limit.
    #[error("the model was still calling tools after {0} rounds; ask again, more narrowly")]
    RoundLimit(usize),
}

/// What a finished loop produced.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutput {
    /// The model's final text.
    pub text: String,
    /// Tokens used by every round.
    pub usage: Usage,
}

/// Sees what the agent does as it happens (verbose mode shows it).
#[async_trait::async_trait]
pub trait AgentObserver: Send + Sync {
    /// The model wrote text alongside tool calls (an intermediate step).
    async fn on_text(&self, _text: &str) {}

    /// The model called a tool.
    async fn on_tool_call(&self, _call: &ToolCall) {}

    /// A model call finished and used `usage` tokens on `model`.
    async fn on_usage(&self, _model: &ModelRef, _usage: Usage) {}
}

/// An observer that ignores everything.
pub struct Unobserved;

impl AgentObserver for Unobserved {}

/// One agent: a model, its instructions and its tools.
pub struct Agent<'a> {
    /// The model it runs on.
    pub model: &'a ModelHandle,
    /// Its system prompt.
    pub system: &'a str,
    /// The tools it may call.
    pub toolbox: &'a dyn Toolbox,
    /// Reasoning effort (clamped to the model here).
    pub effort: Effort,
    /// Rounds before it must answer.
    pub max_rounds: usize,
    /// The engine-wide model-call limiter.
    pub limiter: &'a ModelCallLimiter,
    /// Its place in the limiter's queue.
    pub priority: Priority,
    /// Retries for transient provider errors; `None` means one attempt.
    pub retry: Option<&'a RetryPolicy>,
    /// Who watches it work.
    pub observer: &'a dyn AgentObserver,
}

impl Agent<'_> {
    /// Runs rounds on `history` until the model answers.
    ///
    /// Each round's assistant message and all its tool results are appended
    /// together, so a loop dropped mid-round (cancelled) leaves `history`
    /// valid to continue from later.
    pub async fn run(&self, history: &mut Vec<Message>) -> Result<AgentOutput, AgentError> {
        let mut usage = Usage::default();
        let tools = self.toolbox.specs();
        for _round in 0..self.max_rounds {
            let request = CompletionRequest {
                model: self.model.model.model.clone(),
                system: self.system.to_owned(),
                messages: history.clone(),
                tools: tools.clone(),
                effort: self.model.clamp_effort(self.effort),
                max_output_tokens: None,
            };
            let completion = self.call_model(&request).await?;
            usage.add(completion.usage);
            self.observer
                .on_usage(&self.model.model, completion.usage)
                .await;
            let AssistantMessage {
                text, tool_calls, ..
            } = &completion.message;
            if tool_calls.is_empty() {
                let text = text.clone().unwrap_or_default();
                history.push(Message::Assistant(completion.message));
                return Ok(AgentOutput { text, usage });
            }
            if let Some(text) = text.as_deref().filter(|t| !t.trim().is_empty()) {
                self.observer.on_text(text).await;
            }
            let results = join_all(tool_calls.iter().map(|call| self.call_tool(call))).await;
            history.push(Message::Assistant(completion.message));
            history.extend(results.into_iter().map(Message::ToolResult));
        }
        Err(AgentError::RoundLimit(self.max_rounds))
    }

    async fn call_model(
        &self,
        request: &CompletionRequest,
    ) -> Result<crate::llm::Completion, ProviderError> {
        let attempt = || async {
            let _slot = self.limiter.acquire(self.priority).await;
            self.model.provider.complete(request).await
        };
        match self.retry {
            Some(policy) => with_retry(policy, attempt).await,
            None => attempt().await,
        }
    }

    async fn call_tool(&self, call: &ToolCall) -> ToolResult {
        self.observer.on_tool_call(call).await;
        let outcome = match parse_arguments(&call.arguments) {
            Ok(arguments) => self.toolbox.call(&call.name, arguments).await,
            Err(error) => Err(error),
        };
        let (content, is_error) = match outcome {
            Ok(content) => (content, false),
            Err(error) => (
                serde_json::json!({ "error": error.to_string() }).to_string(),
                true,
            ),
        };
        ToolResult {
            call_id: call.id.clone(),
            name: call.name.clone(),
            content,
            is_error,
        }
    }
}

/// Parses a tool call's JSON arguments; an empty string means no arguments.
fn parse_arguments(raw: &str) -> Result<serde_json::Value, ToolError> {
    if raw.trim().is_empty() {
        return Ok(serde_json::json!({}));
    }
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(other) => Err(ToolError::BadArguments(format!(
            "expected a JSON object, got {other}"
        ))),
        Err(e) => Err(ToolError::BadArguments(format!(
            "arguments are not valid JSON ({e})"
        ))),
    }
}
