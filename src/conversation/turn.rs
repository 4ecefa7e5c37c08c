//! One turn: the orchestrator's agent loop over the conversation's context,
//! with the delegation tools in orchestrator mode. Runs as its own task;
//! the actor posts what it returns.
//!
//! The loop ends with an answer: at its round limit (raised by `/greedy`)
//! the orchestrator answers from what it has, and workers still running at
//! the answer are cancelled by the delegation tools (after one note).

use std::sync::Arc;

use baton_channel::{ConversationKey, WorkerEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentError, Priority};
use crate::budget::UsageMeter;
use crate::llm::models::ModelHandle;
use crate::llm::{Message, Usage};
use crate::orchestrator::{DelegationTools, Limits, WorkerPool, prompt};
use crate::project::{StartedProject, Starter, TurnTools};
use crate::services::Services;
use crate::store::{ConversationSettings, Mode, TurnId};
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
    /// Where projects the orchestrator starts go (the actor runs them);
    /// `None` in single mode, which cannot start projects.
    pub started: Option<mpsc::Sender<StartedProject>>,
    /// The platform id of the message the turn answers.
    pub reply_to: Option<String>,
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
    /// The orchestrator's model failed; the user gets the error's message.
    Failed(AgentError),
    /// `/stop` cancelled it.
    Cancelled,
    /// The turn's task panicked (a bug); the user gets an apology.
    Crashed,
    /// The service stopped during the turn; the next start answers again.
    Interrupted,
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
            },
            starter: Starter {
                services: &services,
                key: &request.key,
                settings: &request.settings,
            },
            reply_to: request.reply_to.as_deref(),
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
    let agent = Agent {
        model: &request.model,
        system: &system,
        toolbox,
        effort: request.settings.effort,
        max_rounds: limits.orchestrator_rounds,
        limiter: &services.limiter,
        priority: Priority::Orchestrator,
        retry: Some(&services.retry),
        observer: &*request.meter,
    };
    let outcome = tokio::select! {
        result = agent.run(&mut context) => match result {
            Ok(output) => {
                if output.cut_short {
                    tracing::info!(conversation = %request.key, rounds = limits.orchestrator_rounds, "the orchestrator answered at its round limit");
                }
                TurnOutcome::Answered { text: output.text, usage: output.usage, cut_short: output.cut_short }
            }
            Err(error) => TurnOutcome::Failed(error),
        },
        () = request.cancel.cancelled() => TurnOutcome::Cancelled,
    };
    if let Some(pool) = &pool {
        pool.shutdown().await;
    }
    outcome
}
