//! One worker: a task that runs briefs through the agent loop on the worker
//! model and keeps its context between them.
//!
//! A worker holds exactly the fields of [`WorkerTask`]: a model, worker-safe
//! tools, the limiter, a sender of display-only [`WorkerEvent`]s and the
//! store. None of them reaches a channel (the one `Reply` handle is owned by
//! the conversation actor and is not `Clone`), so a worker cannot post, by
//! construction:
//!
//! ```compile_fail
//! fn give_a_worker_the_channel(reply: Box<dyn baton_channel::Reply>) {
//!     let for_worker = reply.clone(); // `Reply` handles cannot be copied
//! }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use baton_channel::{
    ConversationKey, Effort, WorkerEvent, WorkerEventKind, WorkerId, WorkerStatus,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentObserver, Priority};
use crate::budget::UsageMeter;
use crate::domain::{ModelRef, Usage};
use crate::llm::models::ModelHandle;
use crate::llm::{Message, ToolCall};
use crate::services::Services;
use crate::store::{EventKind, TurnId};

/// One piece of work handed to a worker.
#[derive(Debug)]
pub(crate) struct Brief {
    /// The prompt: the first brief, or a follow-up.
    pub prompt: String,
    /// Files handed over with the first brief (empty for follow-ups).
    pub attachments: Vec<crate::media::Ready>,
    /// Effort for this run, already clamped.
    pub effort: Effort,
    /// Cancels this run only.
    pub cancel: CancellationToken,
}

/// A worker's latest run, as published to the pool.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunState {
    /// Which run (1 for the first brief, +1 per `send_to_worker`).
    pub run: u32,
    /// Its status.
    pub status: WorkerStatus,
    /// The final text, when done.
    pub result: Option<String>,
    /// What went wrong, when it failed.
    pub error: Option<String>,
    /// Whether the round limit cut the run short (`result` is then what
    /// the worker answered from what it had).
    pub cut_short: bool,
    /// When the run finished, in the pool's order of finishes (1 for the
    /// first run of the turn to finish); 0 while it runs.
    pub finished: u64,
    /// Tokens used by all its runs so far.
    pub usage: Usage,
    /// When this run started.
    pub started_at: std::time::Instant,
    /// Its latest intermediate step (text or tool call), for `check_workers`.
    pub progress: Option<String>,
}

impl RunState {
    /// The state of a run that just started.
    pub fn started(run: u32, usage: Usage) -> Self {
        RunState {
            run,
            status: WorkerStatus::Running,
            result: None,
            error: None,
            cut_short: false,
            finished: 0,
            usage,
            started_at: std::time::Instant::now(),
            progress: None,
        }
    }
}

/// How one run ended.
struct RunEnd {
    status: WorkerStatus,
    result: Option<String>,
    error: Option<String>,
    cut_short: bool,
}

impl RunEnd {
    fn failed(status: WorkerStatus, error: String) -> Self {
        RunEnd {
            status,
            result: None,
            error: Some(error),
            cut_short: false,
        }
    }
}

/// Everything a worker task owns. See the module docs: nothing here posts.
pub(crate) struct WorkerTask {
    pub id: WorkerId,
    pub label: String,
    pub system: String,
    /// The model it runs on (routing chose it at spawn).
    pub model: ModelHandle,
    /// Counts its tokens into the turn's totals.
    pub meter: Arc<UsageMeter>,
    pub services: Arc<Services>,
    pub key: ConversationKey,
    pub turn: TurnId,
    pub events: mpsc::Sender<WorkerEvent>,
    pub state: Arc<watch::Sender<RunState>>,
    pub briefs: mpsc::Receiver<Brief>,
    /// Rounds of tool calls per run before it must answer (`/greedy`
    /// raises it).
    pub max_rounds: usize,
    /// How long one run may take (`/greedy` raises it).
    pub timeout: Duration,
    /// The pool's count of finished runs; a run that ends takes the next
    /// number (see [`RunState::finished`]).
    pub finishes: Arc<AtomicU64>,
    /// Its place in the model-call limiter's queue (projects' workers go
    /// after chat turns').
    pub priority: Priority,
}

impl WorkerTask {
    /// Runs briefs until the pool closes the worker.
    pub async fn run(mut self) {
        let mut history: Vec<Message> = Vec::new();
        let mut usage = Usage::default();
        while let Some(brief) = self.briefs.recv().await {
            self.emit(WorkerEventKind::Started {
                brief: brief.prompt.clone(),
            })
            .await;
            history.push(crate::media::worker_brief(
                &brief.prompt,
                &brief.attachments,
            ));
            let end = self
                .run_brief(&mut history, &mut usage, brief.effort, &brief.cancel)
                .await;
            let status = end.status;
            if status != WorkerStatus::Done {
                // Keep the context valid for a follow-up brief.
                history.push(Message::assistant(format!("(stopped: {status})")));
            }
            self.record(status, end.result.as_deref(), end.error.as_deref(), usage)
                .await;
            if let Some(text) = &end.result {
                self.emit(WorkerEventKind::Text(text.clone())).await;
            }
            self.state.send_modify(|state| {
                state.status = status;
                state.result = end.result;
                state.error = end.error;
                state.cut_short = end.cut_short;
                state.finished = self.finishes.fetch_add(1, Ordering::SeqCst) + 1;
                state.usage = usage;
            });
            self.emit(WorkerEventKind::Finished { status }).await;
        }
    }

    async fn run_brief(
        &self,
        history: &mut Vec<Message>,
        usage: &mut Usage,
        effort: Effort,
        cancel: &CancellationToken,
    ) -> RunEnd {
        let services = &self.services;
        let observer = WorkerObserver { task: self };
        let agent = Agent {
            model: &self.model,
            system: &self.system,
            toolbox: &services.tools,
            effort,
            max_rounds: self.max_rounds,
            limiter: &services.limiter,
            priority: self.priority,
            conversation: &self.key,
            // Workers are single-shot: a failure goes straight back to the
            // orchestrator, which decides what to do.
            retry: None,
            observer: &observer,
        };
        let timeout = self.timeout;
        tokio::select! {
            outcome = agent.run(history) => match outcome {
                Ok(output) => {
                    usage.add(output.usage);
                    RunEnd {
                        status: WorkerStatus::Done,
                        result: Some(output.text),
                        error: None,
                        cut_short: output.cut_short,
                    }
                }
                Err(error) => RunEnd::failed(WorkerStatus::Error, error.to_string()),
            },
            () = cancel.cancelled() => RunEnd::failed(WorkerStatus::Cancelled, "cancelled".into()),
            () = tokio::time::sleep(timeout) => RunEnd::failed(
                WorkerStatus::TimedOut,
                format!("no result within {}", humanize(timeout)),
            ),
        }
    }

    async fn emit(&self, kind: WorkerEventKind) {
        let event = WorkerEvent {
            worker_id: self.id.clone(),
            label: self.label.clone(),
            kind,
        };
        // The actor stops listening once the turn ends; that is fine.
        let _ = self.events.send(event).await;
    }

    /// Records an intermediate step in the event log, then shows it.
    async fn progress(&self, kind: WorkerEventKind) {
        let body = match &kind {
            WorkerEventKind::Text(text) => text.clone(),
            WorkerEventKind::ToolCall { name, arguments } => format!("{name}({arguments})"),
            WorkerEventKind::Started { brief } => brief.clone(),
            WorkerEventKind::Finished { status } => status.to_string(),
        };
        self.state
            .send_modify(|state| state.progress = Some(body.clone()));
        let store = &self.services.store;
        if let Err(e) = store
            .record_event(
                &self.key,
                Some(self.turn),
                EventKind::Progress,
                &self.id.0,
                &body,
            )
            .await
        {
            tracing::warn!(worker = %self.id, error = %e, "could not record worker progress");
        }
        self.emit(kind).await;
    }

    async fn record(
        &self,
        status: WorkerStatus,
        result: Option<&str>,
        error: Option<&str>,
        usage: Usage,
    ) {
        let store = &self.services.store;
        if let Err(e) = store
            .update_worker(self.turn, &self.id, status, result, error, usage)
            .await
        {
            tracing::warn!(worker = %self.id, error = %e, "could not record a worker's result");
        }
        let (kind, body) = match (result, error) {
            (Some(result), _) => (EventKind::Result, result),
            (None, Some(error)) => (EventKind::Error, error),
            (None, None) => (EventKind::Result, ""),
        };
        if let Err(e) = store
            .record_event(&self.key, Some(self.turn), kind, &self.id.0, body)
            .await
        {
            tracing::warn!(worker = %self.id, error = %e, "could not record a worker event");
        }
    }
}

/// Turns a worker's agent-loop activity into display events.
struct WorkerObserver<'a> {
    task: &'a WorkerTask,
}

#[async_trait::async_trait]
impl AgentObserver for WorkerObserver<'_> {
    async fn on_text(&self, text: &str) {
        self.task
            .progress(WorkerEventKind::Text(text.to_owned()))
            .await;
    }

    async fn on_usage(&self, model: &ModelRef, usage: Usage) {
        self.task.meter.add(model, usage);
    }

    async fn on_tool_call(&self, call: &ToolCall) {
        self.task
            .progress(WorkerEventKind::ToolCall {
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            })
            .await;
    }
}

fn humanize(duration: Duration) -> String {
    format!("{}s", duration.as_secs())
}
