//! The model <-> tool loop shared by the orchestrator and its workers.
//!
//! One round is a model call, then every tool call of that round run
//! concurrently, then their results appended; rounds repeat until the model
//! answers with text alone. Tool failures of any kind go back to the model
//! as error results: they never end the loop. Only provider errors (after
//! the caller's retries) do.
//!
//! Two things can hold an answer back or shape it:
//! - the round limit: after `max_rounds` rounds of tool calls the model gets
//!   one last call in which it may not call tools (they stay declared, with
//!   [`ToolChoice::None`]), with [`ROUND_LIMIT_NOTE`]; that answer is the
//!   output, marked [`AgentOutput::cut_short`];
//! - the toolbox: before an answer is taken, [`Toolbox::before_answer`] may
//!   hold it back once with a note (running workers, say), and
//!   [`Toolbox::after_answer`] settles what is left once it is taken.

mod limiter;
#[cfg(test)]
mod tests;

pub use limiter::{
    CallPermit, Caller, LimiterLoad, MAX_PAUSE, ModelCallLimiter, Priority, ProviderLoad,
};

use baton_channel::ConversationKey;
use futures::future::join_all;

use crate::domain::{ModelRef, ToolSpec, Usage};
use crate::llm::models::ModelHandle;
use crate::llm::retry::{RetryPolicy, with_retry_notify};
use crate::llm::{
    AssistantMessage, Completion, CompletionRequest, Effort, Message, ProviderError, ToolCall,
    ToolChoice, ToolResult,
};
use crate::tools::{ToolError, Toolbox};

/// The note (a user message) that asks for the answer at the round limit;
/// `{rounds}` is the limit.
pub const ROUND_LIMIT_NOTE: &str = "You have reached your limit of {rounds} tool rounds, \
so you cannot call tools any more. Answer now, from what you have so far. If the work is \
unfinished, give what you have and say briefly what is missing.";

/// The prompt-cache key of a conversation's model calls (OpenAI
/// `prompt_cache_key`): stable for the conversation, and a hash so that no
/// chat id leaves for the provider. The orchestrator and its workers share
/// it; their system prompts tell their prefixes apart.
pub fn prompt_cache_key(conversation: &ConversationKey) -> String {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same in every run of the same build.
    let mut hasher = std::hash::DefaultHasher::new();
    conversation.to_string().hash(&mut hasher);
    format!("baton-{:016x}", hasher.finish())
}

/// The answer of an agent cut short whose last call returned no text.
pub const CUT_SHORT_FALLBACK: &str =
    "(I reached my step limit before I could finish, and have no answer to give yet.)";

/// Why an agent loop ended without an answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentError {
    /// The model call failed (after retries, where the caller allows them).
    /// Transient when the provider error is.
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl AgentError {
    /// What a chat user is told (see [`ProviderError::user_message`]); the
    /// `Display` form, with the provider's redacted words, is for the log
    /// and the store.
    pub fn user_message(&self) -> String {
        match self {
            AgentError::Provider(error) => error.user_message(),
        }
    }
}

/// What a finished loop produced.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentOutput {
    /// The model's final text.
    pub text: String,
    /// Tokens used by every round.
    pub usage: Usage,
    /// Whether the round limit cut the work short: `text` is what the model
    /// answered, without tools, from what it had by then.
    pub cut_short: bool,
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

    /// A round of tool calls ended; `history` holds it whole (a project's
    /// boss saves its context here).
    async fn on_round(&self, _history: &[Message]) {}

    /// A model call failed for a transient reason and is about to be tried
    /// again: `attempt` is the attempt that starts next (2 for the first
    /// retry), `reason` a few plain words (no provider text). Called before
    /// the backoff wait; it must not block.
    fn on_retry(&self, _attempt: u32, _reason: &str) {}
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
    /// Rounds of tool calls before it must answer without tools.
    pub max_rounds: usize,
    /// The engine-wide model-call limiter.
    pub limiter: &'a ModelCallLimiter,
    /// Its place in the limiter's queue.
    pub priority: Priority,
    /// The conversation it works for (the limiter shares slots fairly
    /// between conversations).
    pub conversation: &'a ConversationKey,
    /// Retries for transient provider errors; `None` means one attempt.
    pub retry: Option<&'a RetryPolicy>,
    /// Who watches it work.
    pub observer: &'a dyn AgentObserver,
}

impl Agent<'_> {
    /// Runs rounds on `history` until the model answers (see the module
    /// docs for the round limit and the toolbox's say before an answer).
    ///
    /// Each round's assistant message and all its tool results are appended
    /// together, so a loop dropped mid-round (cancelled) leaves `history`
    /// valid to continue from later.
    pub async fn run(&self, history: &mut Vec<Message>) -> Result<AgentOutput, AgentError> {
        let mut usage = Usage::default();
        let tools = self.toolbox.specs();
        let mut tool_rounds = 0;
        let mut noted = false;
        while tool_rounds < self.max_rounds {
            let completion = self
                .complete(history, &tools, ToolChoice::Auto, &mut usage)
                .await?;
            let AssistantMessage {
                text, tool_calls, ..
            } = &completion.message;
            if tool_calls.is_empty() {
                let text = text.clone().unwrap_or_default();
                history.push(Message::Assistant(completion.message));
                // The toolbox may hold the answer back once, with a note;
                // that exchange is not a tool round.
                if !noted && let Some(note) = self.toolbox.before_answer().await {
                    noted = true;
                    history.push(Message::user(note));
                    continue;
                }
                self.toolbox.after_answer().await;
                return Ok(AgentOutput {
                    text,
                    usage,
                    cut_short: false,
                });
            }
            tool_rounds += 1;
            if let Some(text) = text.as_deref().filter(|t| !t.trim().is_empty()) {
                self.observer.on_text(text).await;
            }
            let results = join_all(tool_calls.iter().map(|call| self.call_tool(call))).await;
            history.push(Message::Assistant(completion.message));
            history.extend(results.into_iter().map(Message::ToolResult));
            self.observer.on_round(history).await;
        }
        self.answer_at_round_limit(history, &tools, usage).await
    }

    /// The last call at the round limit: the note, then one call in which
    /// the model may not call tools. Tool calls it makes anyway are dropped.
    async fn answer_at_round_limit(
        &self,
        history: &mut Vec<Message>,
        tools: &[ToolSpec],
        mut usage: Usage,
    ) -> Result<AgentOutput, AgentError> {
        let note = ROUND_LIMIT_NOTE.replace("{rounds}", &self.max_rounds.to_string());
        history.push(Message::user(note));
        let completion = self
            .complete(history, tools, ToolChoice::None, &mut usage)
            .await?;
        let AssistantMessage {
            text,
            tool_calls,
            provider_state,
        } = completion.message;
        if !tool_calls.is_empty() {
            tracing::debug!(
                model = %self.model.model,
                calls = tool_calls.len(),
                "the model called tools when it may not; using its text"
            );
        }
        let text = text
            .filter(|text| !text.trim().is_empty())
            .unwrap_or_else(|| CUT_SHORT_FALLBACK.to_owned());
        history.push(Message::Assistant(AssistantMessage {
            text: Some(text.clone()),
            tool_calls: Vec::new(),
            provider_state,
        }));
        self.toolbox.after_answer().await;
        Ok(AgentOutput {
            text,
            usage,
            cut_short: true,
        })
    }

    /// One model call on `history`, its usage counted and observed.
    async fn complete(
        &self,
        history: &[Message],
        tools: &[ToolSpec],
        tool_choice: ToolChoice,
        usage: &mut Usage,
    ) -> Result<Completion, ProviderError> {
        let request = CompletionRequest {
            model: self.model.model.model.clone(),
            system: self.system.to_owned(),
            messages: history.to_vec(),
            tools: tools.to_vec(),
            tool_choice,
            effort: self.model.clamp_effort(self.effort),
            max_output_tokens: None,
            cache_key: Some(prompt_cache_key(self.conversation)),
        };
        let completion = self.call_model(&request).await?;
        crate::metrics::model_usage(
            &self.model.model,
            self.priority.as_str(),
            completion.usage,
            self.model.spec.cost(completion.usage),
        );
        usage.add(completion.usage);
        self.observer
            .on_usage(&self.model.model, completion.usage)
            .await;
        Ok(completion)
    }

    async fn call_model(&self, request: &CompletionRequest) -> Result<Completion, ProviderError> {
        let caller = Caller {
            provider: &self.model.model.provider,
            priority: self.priority,
            conversation: self.conversation,
        };
        let attempt = || async {
            let slot = self.limiter.acquire(caller).await;
            let started = std::time::Instant::now();
            let result = self.model.provider.complete(request).await;
            // The provider's limit learns from every attempt.
            slot.finish(&result);
            let (ok, took) = (result.is_ok(), started.elapsed());
            crate::metrics::model_call(&self.model.model, self.priority.as_str(), ok, took);
            result
        };
        match self.retry {
            Some(policy) => {
                let on_retry = |next: u32, error: &ProviderError| {
                    self.observer.on_retry(next, error.retry_reason());
                };
                with_retry_notify(policy, attempt, on_retry).await
            }
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
