//! The tools a project's boss has beside the delegation tools:
//! `report_progress(status, message)`, `check_workers()` and
//! `project_complete(summary)` (names and arguments as in DESIGN.md).

use std::sync::{Mutex, PoisonError};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

use super::ProjectEvent;
use crate::domain::ToolSpec;
use crate::orchestrator::DelegationTools;
use crate::store::{EventKind, ProjectId, Store, TurnId};
use crate::tools::{ToolError, Toolbox};

/// The exact names of the project tools.
pub const PROJECT_TOOLS: [&str; 3] = ["report_progress", "check_workers", "project_complete"];

/// What `report_progress` says about the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressStatus {
    /// Work goes on.
    Working,
    /// A part is done.
    Done,
    /// Something went wrong (the boss goes on).
    Error,
    /// The boss needs the user: the message is posted as a question and
    /// the project pauses until `/project resume N answer`.
    Blocked,
}

impl ProgressStatus {
    /// The word used in tool arguments and the event log.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressStatus::Working => "working",
            ProgressStatus::Done => "done",
            ProgressStatus::Error => "error",
            ProgressStatus::Blocked => "blocked",
        }
    }
}

/// How the boss asked to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BossEnd {
    /// `project_complete(summary)`.
    Complete(String),
    /// `report_progress(blocked, question)`.
    Blocked(String),
    /// A budget's hard cap was reached; the text says which.
    OverBudget(String),
}

/// What the project tools share with the boss task.
pub(crate) struct BossState {
    pub project: ProjectId,
    pub key: baton_channel::ConversationKey,
    pub turn: TurnId,
    pub store: Store,
    pub events: mpsc::Sender<ProjectEvent>,
    /// Set once by `project_complete` or a `blocked` report.
    end: Mutex<Option<BossEnd>>,
    ended: Notify,
}

impl BossState {
    pub fn new(
        project: ProjectId,
        key: baton_channel::ConversationKey,
        turn: TurnId,
        store: Store,
        events: mpsc::Sender<ProjectEvent>,
    ) -> Self {
        Self {
            project,
            key,
            turn,
            store,
            events,
            end: Mutex::new(None),
            ended: Notify::new(),
        }
    }

    /// Resolves once the boss asked to stop; returns how.
    pub async fn ended(&self) -> BossEnd {
        loop {
            let notified = self.ended.notified();
            if let Some(end) = self.end_now() {
                return end;
            }
            notified.await;
        }
    }

    fn end_now(&self) -> Option<BossEnd> {
        self.end
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the boss at a budget's hard cap (unless it is ending anyway).
    pub fn stop_over_budget(&self, reason: String) {
        self.end_with(BossEnd::OverBudget(reason));
    }

    fn end_with(&self, end: BossEnd) -> bool {
        let mut slot = self.end.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return false;
        }
        *slot = Some(end);
        drop(slot);
        self.ended.notify_waiters();
        true
    }

    /// Records a line on the message bus under the project's name.
    pub async fn log(&self, kind: EventKind, body: &str) {
        let source = format!("project {}", self.project);
        if let Err(e) = self
            .store
            .record_event(&self.key, Some(self.turn), kind, &source, body)
            .await
        {
            tracing::warn!(project = %self.project, error = %e, "could not record a project event");
        }
    }
}

/// The boss's toolbox: the delegation tools (with its workers) and the
/// project tools.
pub(crate) struct ProjectTools<'a> {
    pub delegation: DelegationTools<'a>,
    pub state: &'a BossState,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgressArgs {
    status: ProgressStatus,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteArgs {
    summary: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

fn parse<T: serde::de::DeserializeOwned>(arguments: Value) -> Result<T, ToolError> {
    serde_json::from_value(arguments).map_err(|e| ToolError::BadArguments(e.to_string()))
}

#[async_trait::async_trait]
impl Toolbox for ProjectTools<'_> {
    fn specs(&self) -> Vec<ToolSpec> {
        let mut specs = self.delegation.specs();
        specs.extend(project_specs());
        specs
    }

    async fn call(&self, name: &str, arguments: Value) -> Result<String, ToolError> {
        let result = match name {
            "report_progress" => {
                let args: ProgressArgs = parse(arguments)?;
                self.report(args).await?
            }
            "check_workers" => {
                let _: NoArgs = parse(arguments)?;
                self.delegation.pool.check_workers()
            }
            "project_complete" => {
                let args: CompleteArgs = parse(arguments)?;
                if args.summary.trim().is_empty() {
                    return Err(ToolError::BadArguments("summary must not be empty".into()));
                }
                if !self.state.end_with(BossEnd::Complete(args.summary)) {
                    return Err(ToolError::failed("the project is already ending"));
                }
                json!({"project_id": self.state.project.0, "status": "completed"})
            }
            other => return self.delegation.call(other, arguments).await,
        };
        Ok(result.to_string())
    }

    async fn before_answer(&self) -> Option<String> {
        self.delegation.before_answer().await
    }

    async fn after_answer(&self) {
        self.delegation.after_answer().await;
    }
}

impl ProjectTools<'_> {
    async fn report(&self, args: ProgressArgs) -> Result<Value, ToolError> {
        let message = args.message.trim().to_owned();
        if message.is_empty() {
            return Err(ToolError::BadArguments("message must not be empty".into()));
        }
        let state = self.state;
        state
            .log(
                EventKind::Progress,
                &format!("{}: {message}", args.status.as_str()),
            )
            .await;
        if args.status == ProgressStatus::Blocked {
            if !state.end_with(BossEnd::Blocked(message)) {
                return Err(ToolError::failed("the project is already ending"));
            }
            return Ok(json!({
                "project_id": state.project.0,
                "status": "paused",
                "note": "Your question is posted to the user; the project pauses until they answer."
            }));
        }
        let event = ProjectEvent::Progress {
            project: state.project,
            status: args.status,
            message,
        };
        // Display only: a full or closed channel loses a progress line, no work.
        let _ = state.events.try_send(event);
        Ok(json!({"ok": true}))
    }
}

/// The project tools' specs.
pub fn project_specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "report_progress".into(),
            description: "Report the project's progress on the message bus (users with verbose on see it). Status `blocked` means you need the user: the message is posted to them as a question and the project pauses until they answer.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "status": {"type": "string", "enum": ["working", "done", "error", "blocked"]},
                    "message": {"type": "string", "description": "One or two sentences; for blocked, the question for the user."}
                },
                "required": ["status", "message"]
            }),
        },
        ToolSpec {
            name: "check_workers".into(),
            description: "See every worker of this project without waiting: id, label, status, model, tokens, seconds elapsed and its latest progress line. Use await_workers to wait for results.".into(),
            parameters: json!({"type": "object", "properties": {}}),
        },
        ToolSpec {
            name: "project_complete".into(),
            description: "End the project with its result. The summary is posted to the user as the project's outcome, so write it for them: complete, in your own voice. Make sure no worker is still running.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "summary": {"type": "string", "description": "The project's result, for the user."}
                },
                "required": ["summary"]
            }),
        },
    ]
}
