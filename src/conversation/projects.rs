//! The actor's side of its conversation's projects: `/project` commands,
//! starting, pausing, resuming and cancelling boss tasks, and posting what
//! they report (results, questions, and progress when verbose is on).
//!
//! The actor owns its projects' tasks: it stays in memory while one runs,
//! and a boss reaches the conversation only through the actor, which alone
//! posts. A project's outcome is marked posted once the post went out, so
//! a restart posts an outcome that was stored but not delivered.

use std::collections::HashMap;

use baton_channel::{Origin, ProjectCommand, WorkerEvent, WorkerEventKind, WorkerId};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::actor::Actor;
use super::reply_cap::cap_reply;
use crate::budget::{self, Allowance};
use crate::project::{
    ProjectControl, ProjectEvent, ProjectRun, StartedProject, Starter, outcome_text, run_project,
    status_line,
};
use crate::services::ProjectSlot;
use crate::store::{NewProject, ProjectId, ProjectStatus, StoredProject};

/// Events buffered between an actor's projects and the actor.
const PROJECT_EVENTS: usize = 64;
/// The longest goal a project takes.
const MAX_GOAL_CHARS: usize = 8_000;
/// Projects `/project status` lists.
const STATUS_LIMIT: usize = 10;

/// One running boss task.
struct Running {
    control: ProjectControl,
    _task: AbortOnDropHandle<()>,
}

/// An actor's running projects and the channel they report on (made when
/// the first one starts, so an idle conversation costs nothing more).
#[derive(Default)]
pub(crate) struct ActorProjects {
    running: HashMap<ProjectId, Running>,
    events: Option<(mpsc::Sender<ProjectEvent>, mpsc::Receiver<ProjectEvent>)>,
}

impl ActorProjects {
    /// Whether any project's boss is running.
    pub fn any_running(&self) -> bool {
        !self.running.is_empty()
    }

    /// The next event of a running project (pending while none runs).
    pub async fn next_event(&mut self) -> ProjectEvent {
        match &mut self.events {
            Some((_, events)) if !self.running.is_empty() => match events.recv().await {
                Some(event) => event,
                None => std::future::pending().await,
            },
            _ => std::future::pending().await,
        }
    }

    fn sender(&mut self) -> mpsc::Sender<ProjectEvent> {
        self.events
            .get_or_insert_with(|| mpsc::channel(PROJECT_EVENTS))
            .0
            .clone()
    }
}

impl Actor {
    /// Answers a `/project` command.
    pub(super) async fn project_command(&mut self, origin: &Origin, command: ProjectCommand) {
        let text = match command {
            ProjectCommand::Start(goal) => self.start_project(origin, goal).await,
            ProjectCommand::Status => self.project_status().await,
            ProjectCommand::Pause(id) => self.pause_project(id).await,
            ProjectCommand::Resume { project, answer } => {
                self.resume_project(project, answer).await
            }
            ProjectCommand::Cancel(id) => self.cancel_project(id).await,
        };
        self.post(origin, &text).await;
    }

    async fn start_project(&mut self, origin: &Origin, goal: String) -> String {
        let goal = goal.trim().to_owned();
        if goal.chars().count() > MAX_GOAL_CHARS {
            return format!(
                "That goal is too long for a project (at most {MAX_GOAL_CHARS} characters)."
            );
        }
        let services = self.services.clone();
        let store = &services.store;
        let config = &services.config;
        if let Ok(Allowance::Refused(text)) =
            budget::allowance(store, &config.models, &config.budget, &self.key).await
        {
            return text;
        }
        let starter = Starter {
            services: &services,
            key: &self.key,
            settings: &self.settings,
        };
        let reply_to = origin.stored_id();
        let new = NewProject {
            goal: &goal,
            plan: None,
            model: "",
            reply_to: reply_to.as_deref(),
        };
        match starter.start(new).await {
            Ok(started) => {
                let id = started.project.id;
                self.run_project(started, None);
                format!(
                    "Started project {id}: {goal}\nI'll post the result here. /project status shows how it goes."
                )
            }
            Err(refusal) => refusal.to_string(),
        }
    }

    /// Starts (or restarts) a project's boss task.
    pub(super) fn run_project(&mut self, started: StartedProject, answer: Option<String>) {
        let id = started.project.id;
        let control = ProjectControl::default();
        let run = ProjectRun {
            project: started.project,
            services: self.services.clone(),
            settings: self.settings.clone(),
            events: self.projects.sender(),
            control: control.clone(),
            answer,
        };
        let slot: ProjectSlot = started.slot;
        let task = tokio::spawn(async move {
            run_project(run).await;
            drop(slot);
        });
        self.projects.running.insert(
            id,
            Running {
                control,
                _task: AbortOnDropHandle::new(task),
            },
        );
    }

    /// Takes up a project after a restart: a running one's boss goes on,
    /// an ended one's unposted outcome is posted.
    pub(super) async fn take_up_project(&mut self, project: StoredProject) {
        if project.status == ProjectStatus::Running {
            if self.projects.running.contains_key(&project.id) {
                return;
            }
            match self.services.projects.take() {
                Some(slot) => self.run_project(StartedProject { project, slot }, None),
                None => {
                    tracing::warn!(project = %project.id, "too many projects running; this one waits for the next start")
                }
            }
            return;
        }
        let text = outcome_text(&project);
        if let Some(text) = text {
            let origin = self.stored_origin(project.reply_to.as_deref());
            self.post_outcome(project.id, origin, &text).await;
        }
    }

    async fn project_status(&mut self) -> String {
        let store = &self.services.store;
        let projects = match store.projects_of(&self.key, STATUS_LIMIT).await {
            Ok(projects) => projects,
            Err(e) => {
                tracing::warn!(conversation = %self.key, error = %e, "cannot read projects");
                return "Sorry, I cannot read this conversation's projects right now.".into();
            }
        };
        if projects.is_empty() {
            return "No projects here yet. /project <goal> starts one.".into();
        }
        let mut lines = vec!["Projects:".to_owned()];
        for project in projects {
            lines.push(status_line(&self.services, &project).await);
        }
        lines.join("\n")
    }

    /// The project a command means: the one named, or the newest one
    /// `fits` (running for pause, paused for resume, ...).
    async fn pick_project(
        &self,
        id: Option<u64>,
        fits: impl Fn(ProjectStatus) -> bool,
    ) -> Result<StoredProject, String> {
        let store = &self.services.store;
        let found = match id {
            Some(id) => {
                let id = ProjectId(i64::try_from(id).unwrap_or(i64::MAX));
                store
                    .load_project(id)
                    .await
                    .map(|project| project.filter(|p| p.key == self.key))
            }
            None => store
                .projects_of(&self.key, STATUS_LIMIT)
                .await
                .map(|projects| projects.into_iter().find(|p| fits(p.status))),
        };
        match found {
            Ok(Some(project)) => Ok(project),
            Ok(None) => Err(match id {
                Some(id) => format!("There is no project {id} in this conversation."),
                None => "No project here fits that; /project status lists them.".into(),
            }),
            Err(e) => {
                tracing::warn!(conversation = %self.key, error = %e, "cannot read projects");
                Err("Sorry, I cannot read this conversation's projects right now.".into())
            }
        }
    }

    async fn pause_project(&mut self, id: Option<u64>) -> String {
        let project = match self
            .pick_project(id, |status| status == ProjectStatus::Running)
            .await
        {
            Ok(project) => project,
            Err(text) => return text,
        };
        match self.projects.running.get(&project.id) {
            Some(running) => {
                running.control.pause.cancel();
                format!(
                    "Pausing project {}: it stops once its workers' current calls are done.",
                    project.id
                )
            }
            None => format!("Project {} is {}, not running.", project.id, project.status),
        }
    }

    async fn cancel_project(&mut self, id: Option<u64>) -> String {
        let project = match self.pick_project(id, |status| !status.is_final()).await {
            Ok(project) => project,
            Err(text) => return text,
        };
        if let Some(running) = self.projects.running.get(&project.id) {
            running.control.cancel.cancel();
            return format!("Cancelling project {}…", project.id);
        }
        if project.status.is_final() {
            return format!("Project {} is already {}.", project.id, project.status);
        }
        let store = &self.services.store;
        let cancelled = store
            .set_project_status(
                project.id,
                ProjectStatus::Cancelled,
                Some("cancelled by /project cancel"),
                None,
            )
            .await;
        match cancelled.and(store.mark_project_posted(project.id).await) {
            Ok(()) => format!("Project {} is cancelled.", project.id),
            Err(e) => {
                tracing::warn!(project = %project.id, error = %e, "could not cancel a project");
                "Sorry, I could not cancel it; please try again.".into()
            }
        }
    }

    async fn resume_project(&mut self, id: Option<u64>, answer: Option<String>) -> String {
        let project = match self
            .pick_project(id, |status| status == ProjectStatus::Paused)
            .await
        {
            Ok(project) => project,
            Err(text) => return text,
        };
        if project.status != ProjectStatus::Paused {
            return format!("Project {} is {}, not paused.", project.id, project.status);
        }
        let store = &self.services.store;
        let Some(slot) = self.services.projects.take() else {
            return "Too many projects are running on this service; try again later.".into();
        };
        if let Err(e) = store
            .set_project_status(project.id, ProjectStatus::Running, None, None)
            .await
        {
            tracing::warn!(project = %project.id, error = %e, "could not resume a project");
            return "Sorry, I could not resume it; please try again.".into();
        }
        let id = project.id;
        self.run_project(StartedProject { project, slot }, answer);
        format!("Project {id} goes on.")
    }

    /// Handles what a running project reports.
    pub(super) async fn project_event(&mut self, event: ProjectEvent) {
        match event {
            ProjectEvent::Progress {
                project,
                status,
                message,
            } => {
                let event = WorkerEvent {
                    worker_id: WorkerId(format!("p{project}")),
                    label: format!("project {project}"),
                    kind: WorkerEventKind::Text(format!("{}: {message}", status.as_str())),
                };
                self.show_project(project, &event).await;
            }
            ProjectEvent::Worker { project, event } => {
                let event = WorkerEvent {
                    label: format!("project {project} · {}", event.label),
                    ..event
                };
                self.show_project(project, &event).await;
            }
            ProjectEvent::Stopped {
                project,
                status: _,
                text,
            } => {
                self.projects.running.remove(&project);
                if let Some(text) = text {
                    let origin = self.project_origin(project).await;
                    self.post_outcome(project, origin, &text).await;
                }
            }
        }
    }

    /// The message that started a project, which its output hangs under
    /// (none when the store cannot say: the outcome still goes out).
    async fn project_origin(&self, project: ProjectId) -> Origin {
        match self.services.store.load_project(project).await {
            Ok(Some(stored)) => self.stored_origin(stored.reply_to.as_deref()),
            Ok(None) => Origin::Unnamed,
            Err(e) => {
                tracing::warn!(project = %project, error = %e, "cannot read which message started a project; its output goes out without a reference");
                Origin::Unnamed
            }
        }
    }

    /// A stored platform message id of this conversation, read back.
    fn stored_origin(&self, id: Option<&str>) -> Origin {
        Origin::from_stored(self.key.platform(), id)
    }

    /// Shows a project's line under the message that started it, when
    /// verbose is on.
    async fn show_project(&mut self, project: ProjectId, event: &WorkerEvent) {
        if !self.settings.verbose {
            return;
        }
        let origin = self.project_origin(project).await;
        if let Err(e) = self.reply.verbose(&origin, event).await {
            tracing::warn!(conversation = %self.key, error = %e, "could not show project output");
        }
    }

    /// Posts a project's outcome and records that it went out.
    async fn post_outcome(&mut self, project: ProjectId, origin: Origin, text: &str) {
        let max = self.services.config.engine.max_reply_chars;
        let text = cap_reply(text.to_owned(), max);
        if let Err(e) = self.reply.post(&origin, &text).await {
            tracing::warn!(project = %project, error = %e, "could not post a project's outcome; it is posted again after a restart");
            return;
        }
        if let Err(e) = self.services.store.mark_project_posted(project).await {
            tracing::warn!(project = %project, error = %e, "could not record that a project's outcome was posted");
        }
    }
}
