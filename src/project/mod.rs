//! Long-running projects: a conversation's orchestrator working in the
//! background, as a project's *boss*, with a team of workers, for as long
//! as the work takes. The conversation stays free meanwhile.
//!
//! - `boss.rs`: the boss task: its agent loop with the delegation tools and
//!   the project tools, its context saved after every round, and how it
//!   ends (completed, paused, asking, failed, cancelled).
//! - `tools.rs`: `report_progress`, `check_workers`, `project_complete`.
//! - `start.rs`: starting one (`/project`, `start_project`), with the
//!   limits; `slots.rs`: the service-wide count of running projects.
//! - `outcome.rs`: what users read about a project.
//! - `prompt.rs`: the boss's instructions and first message.
//! - `config.rs`: `[projects]`.
//!
//! A boss never posts: it sends [`ProjectEvent`]s to its conversation's
//! actor, which alone holds the conversation's `Reply` handle and posts
//! results and questions, and shows progress when verbose is on. The actor
//! starts, pauses and cancels its projects (`conversation/projects.rs`).

mod boss;
mod outcome;
mod prompt;
mod start;
mod tools;

pub use boss::{ProjectRun, run_project};
pub use outcome::{headline, outcome_text, status_line};
pub use start::{StartRefusal, StartedProject, Starter, TurnTools, start_project_spec};
pub use tools::{PROJECT_TOOLS, ProgressStatus};

use baton_channel::WorkerEvent;
use tokio_util::sync::CancellationToken;

use crate::store::{ProjectId, ProjectStatus};

/// What a project tells its conversation's actor.
#[derive(Debug, Clone)]
pub enum ProjectEvent {
    /// A `report_progress` line (shown when verbose is on).
    Progress {
        project: ProjectId,
        status: ProgressStatus,
        message: String,
    },
    /// One of the project's workers did something (shown when verbose is on).
    Worker {
        project: ProjectId,
        event: WorkerEvent,
    },
    /// The boss stopped running: the project ended, paused, or asks the
    /// user something. `text` is what to post (nothing for a quiet pause).
    Stopped {
        project: ProjectId,
        status: ProjectStatus,
        text: Option<String>,
    },
}

/// How the actor steers a running project.
#[derive(Debug, Clone, Default)]
pub struct ProjectControl {
    /// `/project pause`: stop once the running workers' calls are done.
    pub pause: CancellationToken,
    /// `/project cancel`: stop now, with every worker.
    pub cancel: CancellationToken,
}
