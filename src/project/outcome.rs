//! What users read about a project: its outcome post (result, question,
//! failure), and its line in `/project status`.

use crate::budget::Spend;
use crate::services::Services;
use crate::store::{ModelUsage, ProjectStatus, StoredProject};

/// The first line of a goal, shortened for a heading.
pub fn headline(goal: &str) -> String {
    let line = goal.lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(120) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_owned(),
    }
}

/// What the conversation is told when a project stops as stored: its
/// result, its question, why it failed. `None` while it runs.
pub fn outcome_text(project: &StoredProject) -> Option<String> {
    let id = project.id;
    Some(match project.status {
        ProjectStatus::Completed => format!(
            "Project {id} is complete: {}\n\n{}",
            headline(&project.goal),
            project
                .result
                .as_deref()
                .unwrap_or("(The project ended without a summary.)")
        ),
        ProjectStatus::Paused => match &project.question {
            Some(question) => format!(
                "Project {id} needs your answer: {question}\n\n\
                 Answer with /project resume {id} followed by your answer."
            ),
            None => format!("Project {id} is paused; /project resume {id} goes on."),
        },
        ProjectStatus::Failed => format!(
            "Project {id} stopped: {}.",
            project.reason.as_deref().unwrap_or("it failed")
        ),
        ProjectStatus::Cancelled => {
            format!("Project {id} is cancelled; none of its workers is running.")
        }
        ProjectStatus::Planning | ProjectStatus::Running => return None,
    })
}

/// A project's line in `/project status`.
pub async fn status_line(services: &Services, project: &StoredProject) -> String {
    let store = &services.store;
    let workers = store.workers(project.turn).await.unwrap_or_default();
    let running = workers
        .iter()
        .filter(|w| w.status == baton_channel::WorkerStatus::Running)
        .count();
    let mut parts: Vec<ModelUsage> = workers
        .iter()
        .map(|w| ModelUsage {
            model: w.model.clone(),
            usage: w.usage,
        })
        .collect();
    if let Ok(Some(turn)) = store.load_turn(project.turn).await {
        parts.push(ModelUsage {
            model: turn.model,
            usage: turn.usage,
        });
    }
    let spend = Spend::of(&parts, &services.config.models);
    let mut line = format!(
        "- {}: {} ({}); {} workers ({running} running); {}, ${:.4}",
        project.id,
        headline(&project.goal),
        project.status,
        workers.len(),
        crate::budget::token_summary(spend.usage),
        spend.usd
    );
    match (&project.question, &project.reason) {
        (Some(question), _) => line.push_str(&format!("; waiting for your answer: {question}")),
        (None, Some(reason)) if project.status != ProjectStatus::Completed => {
            line.push_str(&format!("; {reason}"))
        }
        _ => {}
    }
    line
}
