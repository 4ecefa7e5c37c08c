//! Starting a project, from `/project <goal>` or from the orchestrator's
//! `start_project(goal, plan?)` tool: the limits are checked, the project
//! and its boss's turn are stored, and the conversation's actor is handed
//! the stored project to run.

use std::sync::Arc;

use baton_channel::{ConversationKey, Origin};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::routing::{AgentRole, RouteRequest};
use crate::domain::{ConversationSettings, ToolSpec};
use crate::llm::models::ModelHandle;
use crate::orchestrator::DelegationTools;
use crate::services::ProjectSlot;
use crate::services::Services;
use crate::store::{NewProject, ProjectStatus, StoreError, StoredProject};
use crate::tools::{ToolError, Toolbox};

/// A stored project with its service-wide slot, ready for its boss.
#[derive(Debug)]
pub struct StartedProject {
    /// The project as stored (status `running`).
    pub project: StoredProject,
    /// Its place among the service's running projects.
    pub slot: ProjectSlot,
}

/// Why a project was not started; the text is the answer.
#[derive(Debug, thiserror::Error)]
pub enum StartRefusal {
    /// The conversation runs as many projects as it may.
    #[error(
        "This conversation already runs {0} projects, the most it may; wait for one to end, or /project cancel one."
    )]
    ConversationFull(usize),
    /// The service runs as many projects as it may.
    #[error("Too many projects are running on this service right now; try again later.")]
    ServiceFull,
    /// An empty goal.
    #[error("A project needs a goal: /project <what to do>.")]
    NoGoal,
    /// The store failed (transient or not, the user may try again).
    #[error("Sorry, I could not store the project; please try again.")]
    Store(#[from] StoreError),
}

/// What a start needs to know about the conversation.
pub struct Starter<'a> {
    pub services: &'a Arc<Services>,
    pub key: &'a ConversationKey,
    pub settings: &'a ConversationSettings,
}

impl Starter<'_> {
    /// Checks the limits and stores the project (with its boss's model).
    pub async fn start(&self, new: NewProject<'_>) -> Result<StartedProject, StartRefusal> {
        if new.goal.trim().is_empty() {
            return Err(StartRefusal::NoGoal);
        }
        let services = self.services;
        let limit = services.config.projects.max_running_per_conversation;
        let running = services
            .store
            .projects_of(self.key, limit.saturating_add(64))
            .await?
            .into_iter()
            .filter(|project| project.status == ProjectStatus::Running)
            .count();
        if running >= limit {
            return Err(StartRefusal::ConversationFull(running));
        }
        let slot = services.projects.take().ok_or(StartRefusal::ServiceFull)?;
        let model = boss_model(services, self.settings).model.to_string();
        let project = services
            .store
            .create_project(
                self.key,
                NewProject {
                    model: &model,
                    ..new
                },
            )
            .await?;
        tracing::info!(conversation = %self.key, project = %project.id, "project started");
        Ok(StartedProject { project, slot })
    }
}

/// The boss runs on the conversation's orchestrator model.
pub(crate) fn boss_model(services: &Services, settings: &ConversationSettings) -> ModelHandle {
    let request = RouteRequest {
        conversation: settings.model.as_deref(),
        ..Default::default()
    };
    match services.models.route(AgentRole::Orchestrator, request) {
        Ok((model, _)) => model,
        Err(e) => {
            tracing::warn!(error = %e, "the conversation's model is not available; the project uses the default");
            services.models.orchestrator.clone()
        }
    }
}

/// An orchestrator turn's toolbox: the delegation tools plus
/// `start_project`, which hands the stored project to the actor.
pub struct TurnTools<'a> {
    /// The turn's delegation tools.
    pub delegation: DelegationTools<'a>,
    /// How to start a project here.
    pub starter: Starter<'a>,
    /// The message the turn answers (the project's result replies to it).
    pub reply_to: Origin,
    /// Where started projects go: the actor runs their bosses.
    pub started: &'a mpsc::Sender<StartedProject>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartArgs {
    goal: String,
    plan: Option<String>,
}

#[async_trait::async_trait]
impl Toolbox for TurnTools<'_> {
    fn specs(&self) -> Vec<ToolSpec> {
        let mut specs = self.delegation.specs();
        specs.push(start_project_spec());
        specs
    }

    async fn call(&self, name: &str, arguments: Value) -> Result<String, ToolError> {
        if name != "start_project" {
            return self.delegation.call(name, arguments).await;
        }
        let args: StartArgs = serde_json::from_value(arguments)
            .map_err(|e| ToolError::BadArguments(e.to_string()))?;
        let reply_to = self.reply_to.stored_id();
        let new = NewProject {
            goal: args.goal.trim(),
            plan: args.plan.as_deref(),
            model: "",
            reply_to: reply_to.as_deref(),
        };
        let started = self
            .starter
            .start(new)
            .await
            .map_err(|refusal| ToolError::failed(refusal.to_string()))?;
        let id = started.project.id;
        if self.started.send(started).await.is_err() {
            return Err(ToolError::failed("the conversation is stopping"));
        }
        Ok(json!({"project_id": id.0, "status": "running"}).to_string())
    }

    async fn before_answer(&self) -> Option<String> {
        self.delegation.before_answer().await
    }

    async fn after_answer(&self) {
        self.delegation.after_answer().await;
    }
}

/// `start_project`'s spec.
pub fn start_project_spec() -> ToolSpec {
    ToolSpec {
        name: "start_project".into(),
        description: "Start a long-running project in the background for a request too big for one answer (research something thoroughly and write a report, say). It runs with its own team of workers, for as long as it takes, and its result is posted here when it is done; the chat stays free meanwhile. After starting it, tell the user briefly that it started, with its number, and that the result will be posted here.".into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "goal": {"type": "string", "description": "What the project must achieve, complete and self-contained."},
                "plan": {"type": "string", "description": "An optional plan to start from."}
            },
            "required": ["goal"]
        }),
    }
}
