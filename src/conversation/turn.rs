//! One turn: the orchestrator's agent loop over the conversation's context,
//! with the delegation tools in orchestrator mode. Runs as its own task;
//! the actor posts what it returns.
//!
//! The loop ends with an answer: at its round limit (raised by `/greedy`)
//! the orchestrator answers from what it has, and workers still running at
//! the answer are cancelled by the delegation tools (after one note). The
//! whole turn has a deadline (`[engine] turn_deadline_secs`): past it the
//! turn is given up as [`TurnOutcome::TimedOut`]. When a model call is
//! retried, the user gets one notice a turn ([`RETRY_NOTICE`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use baton_channel::{ConversationKey, Origin, WorkerEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentError, AgentObserver, Priority};
use crate::budget::UsageMeter;
use crate::domain::{ConversationSettings, Mode, ModelRef, Usage};
use crate::llm::models::ModelHandle;
use crate::llm::{Message, ToolCall};
use crate::orchestrator::{DelegationTools, Limits, WorkerPool, prompt};
use crate::project::{StartedProject, Starter, TurnTools};
use crate::services::Services;
use crate::store::TurnId;
use crate::tools::Toolbox;

/// Everything a turn needs, handed over by the actor.
pub struct TurnRequest {
    /// The conversation.
    pub key: ConversationKey,
    /// The turn's row: recorded at the start in orchestrator mode (its
    /// workers point at it); a single-mode turn is recorded at its end.
    pub turn: Option<TurnId>,
    /// The settings when the turn started.
    pub settings: ConversationSettings,
    /// The orchestrator's model for this turn.
    pub model: ModelHandle,
    /// Counts the tokens of the orchestrator and its workers.
    pub meter: Arc<UsageMeter>,
    /// The transcript the orchestrator sees, ending with the new message.
    pub context: Vec<Message>,
    /// Shared services.
    pub services: Arc<Services>,
    /// Where worker events go (the actor forwards them when verbose is on).
    pub events: mpsc::Sender<WorkerEvent>,
    /// Short notices the actor posts while the turn runs (a slow model's
    /// call is retried); at most one a turn.
    pub notices: mpsc::Sender<String>,
    /// Where projects the orchestrator starts go (the actor runs them);
    /// `None` in single mode, which cannot start projects.
    pub started: Option<mpsc::Sender<StartedProject>>,
    /// The context's attachments, which the orchestrator can hand to
    /// workers.
    pub shelf: Arc<crate::media::Shelf>,
    /// The message the turn answers.
    pub reply_to: Origin,
    /// `/stop` cancels this.
    pub cancel: CancellationToken,
}

/// How a turn ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    /// The orchestrator's one reply; `cut_short` when its round limit
    /// made it answer from what it had.
    Answered {
        text: String,
        usage: Usage,
        cut_short: bool,
    },
    /// The orchestrator's model failed; the user gets the error's
    /// [`AgentError::user_message`].
    Failed(AgentError),
    /// The turn passed its deadline (`[engine] turn_deadline_secs`) and
    /// was given up; the user gets [`took_too_long`].
    TimedOut { deadline: Duration },
    /// `/stop` cancelled it.
    Cancelled,
    /// The turn's task panicked (a bug); the user gets an apology.
    Crashed,
    /// The service stopped during the turn; the next start answers again.
    Interrupted,
}

impl TurnOutcome {
    /// The outcome as the metrics label it.
    pub fn label(&self) -> &'static str {
        match self {
            TurnOutcome::Answered {
                cut_short: false, ..
            } => "answered",
            TurnOutcome::Answered {
                cut_short: true, ..
            } => "cut_short",
            TurnOutcome::Failed(_) => "failed",
            TurnOutcome::TimedOut { .. } => "timed_out",
            TurnOutcome::Cancelled => "cancelled",
            TurnOutcome::Crashed => "crashed",
            TurnOutcome::Interrupted => "interrupted",
        }
    }
}

/// The notice a user gets when the orchestrator's model call is retried;
/// `{reason}` is [`crate::llm::ProviderError::retry_reason`].
pub const RETRY_NOTICE: &str = "_The model is slow to answer ({reason}); retrying…_";

/// What a user is told when the turn passed its `deadline`.
pub fn took_too_long(deadline: Duration) -> String {
    let seconds = deadline.as_secs();
    let span = match seconds {
        120.. if seconds.is_multiple_of(60) => format!("{} minutes", seconds / 60),
        60 => "1 minute".to_owned(),
        1 => "1 second".to_owned(),
        _ => format!("{seconds} seconds"),
    };
    format!(
        "Sorry, this took too long (more than {span}), so I stopped. Please try again, perhaps \
         with a smaller request."
    )
}

/// The orchestrator's observer: counts its tokens on the turn's meter and
/// sends one retry notice a turn.
struct TurnObserver<'a> {
    meter: &'a UsageMeter,
    notices: &'a mpsc::Sender<String>,
    noticed: AtomicBool,
}

#[async_trait::async_trait]
impl AgentObserver for TurnObserver<'_> {
    async fn on_text(&self, text: &str) {
        self.meter.on_text(text).await;
    }

    async fn on_tool_call(&self, call: &ToolCall) {
        self.meter.on_tool_call(call).await;
    }

    async fn on_usage(&self, model: &ModelRef, usage: Usage) {
        self.meter.on_usage(model, usage).await;
    }

    async fn on_round(&self, history: &[Message]) {
        self.meter.on_round(history).await;
    }

    fn on_retry(&self, attempt: u32, reason: &str) {
        tracing::info!(attempt, reason, "the orchestrator's model call is retried");
        if !self.noticed.swap(true, Ordering::Relaxed) {
            // A full channel only means a notice is already waiting.
            let _ = self
                .notices
                .try_send(RETRY_NOTICE.replace("{reason}", reason));
        }
    }
}

/// Runs one turn to its end. No worker outlives it.
pub async fn run_turn(request: TurnRequest) -> TurnOutcome {
    let services = request.services.clone();
    let mut context = request.context;
    let pool = match (request.settings.mode, request.turn) {
        (Mode::Orchestrator, Some(turn)) => Some(WorkerPool::new(
            services.clone(),
            request.key.clone(),
            turn,
            &request.settings,
            request.events.clone(),
            request.meter.clone(),
        )),
        (Mode::Orchestrator, None) => {
            tracing::error!(conversation = %request.key, "an orchestrator turn without its row; answering without workers");
            None
        }
        (Mode::Single, _) => None,
    };
    let turn_tools = match (&pool, &request.started) {
        (Some(pool), Some(started)) => Some(TurnTools {
            delegation: DelegationTools {
                pool,
                tools: &services.tools,
                shelf: Some(&request.shelf),
            },
            starter: Starter {
                services: &services,
                key: &request.key,
                settings: &request.settings,
            },
            reply_to: request.reply_to,
            started,
        }),
        _ => None,
    };
    let system = prompt::orchestrator_system(&request.settings);
    let toolbox: &dyn Toolbox = match &turn_tools {
        Some(tools) => tools,
        None => &services.tools,
    };
    let limits = Limits::new(&services.config.orchestrator, request.settings.greedy);
    let observer = TurnObserver {
        meter: &request.meter,
        notices: &request.notices,
        noticed: AtomicBool::new(false),
    };
    let agent = Agent {
        model: &request.model,
        system: &system,
        toolbox,
        effort: request.settings.effort,
        max_rounds: limits.orchestrator_rounds,
        limiter: &services.limiter,
        priority: Priority::Orchestrator,
        conversation: &request.key,
        retry: Some(&services.retry),
        observer: &observer,
    };
    let deadline = services.config.engine.turn_deadline();
    let outcome = tokio::select! {
        result = tokio::time::timeout(deadline, agent.run(&mut context)) => match result {
            Ok(Ok(output)) => {
                if output.cut_short {
                    tracing::info!(conversation = %request.key, rounds = limits.orchestrator_rounds, "the orchestrator answered at its round limit");
                }
                TurnOutcome::Answered { text: output.text, usage: output.usage, cut_short: output.cut_short }
            }
            Ok(Err(error)) => TurnOutcome::Failed(error),
            Err(_elapsed) => {
                tracing::warn!(conversation = %request.key, deadline_secs = deadline.as_secs(), "the turn passed its deadline; giving it up");
                TurnOutcome::TimedOut { deadline }
            }
        },
        () = request.cancel.cancelled() => TurnOutcome::Cancelled,
    };
    if let Some(pool) = &pool {
        pool.shutdown().await;
    }
    outcome
}
