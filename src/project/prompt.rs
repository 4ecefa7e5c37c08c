//! What a project's boss is told: its instructions (the orchestrator's,
//! plus how a project works) and its first message (the goal and plan).

use crate::domain::{ConversationSettings, Mode};
use crate::orchestrator::prompt::orchestrator_system;

/// How a project works, after the orchestrator's instructions.
const PROJECT: &str = "You are now running a long project in the background, as its boss. \
Nobody is waiting on this chat turn: take the rounds the work needs, but no more.

- Plan the work, then hand independent parts to workers (spawn several in one round so they run \
in parallel). Review each result against the goal; send weak work back with send_to_worker.
- check_workers shows every worker's state without waiting; await_workers waits for results.
- report_progress(working|done|error, message) after each milestone, in a sentence or two, so the \
user can follow along. If you cannot go on without the user (a decision only they can make, \
missing access), report_progress(blocked, your question): the question is posted and the project \
pauses until they answer.
- When the goal is met, call project_complete(summary) with the result written for the user: \
complete, in your own voice, not a list of what the workers did.";

/// The boss's instructions for the conversation's settings (always in
/// orchestrator mode: a project has the delegation tools).
pub fn project_system(settings: &ConversationSettings) -> String {
    let settings = ConversationSettings {
        mode: Mode::Orchestrator,
        ..settings.clone()
    };
    format!("{}\n\n{PROJECT}", orchestrator_system(&settings))
}

/// The boss's first message: the goal and, when given, the plan.
pub fn project_brief(goal: &str, plan: Option<&str>) -> String {
    match plan.map(str::trim).filter(|plan| !plan.is_empty()) {
        Some(plan) => format!("Project goal:\n{goal}\n\nPlan to start from:\n{plan}"),
        None => format!("Project goal:\n{goal}"),
    }
}
