//! A project's boss: the conversation's orchestrator, running the agent
//! loop in the background with the delegation tools and the project tools,
//! for as many rounds as `[projects] max_boss_rounds` allows.
//!
//! Everything it does is stored as it happens: its context after every
//! round, its tokens on its turn row, its workers on theirs, and each
//! report on the message bus. So a stopped boss (a pause, a question, a
//! restart) goes on later from the stored state; workers that were still
//! running then are reported to it as interrupted, with their briefs.
//!
//! It ends in one of five ways, each stored before the actor hears of it:
//! completed (`project_complete`, or a plain answer), paused (asked to, or
//! a `blocked` question), failed (the model failed, a budget cap),
//! cancelled.

use std::sync::Arc;

use baton_channel::WorkerEvent;
use tokio::sync::mpsc;

use super::outcome::{headline, outcome_text};
use super::prompt;
use super::start::boss_model;
use super::tools::{BossEnd, BossState, ProjectTools};
use super::{ProjectControl, ProjectEvent};
use crate::agent::{Agent, AgentObserver, Priority};
use crate::budget::{self, Allowance, UsageMeter};
use crate::domain::{ConversationSettings, ModelRef, Usage};
use crate::llm::Message;
use crate::orchestrator::{DelegationTools, Limits, WorkerPool};
use crate::services::Services;
use crate::store::{EventKind, ProjectStatus, StoredProject};

/// Worker events buffered between a project's workers and its boss.
const WORKER_EVENTS: usize = 64;
/// The longest result of an earlier worker repeated to a resumed boss.
const RESULT_EXCERPT: usize = 4_000;

/// Everything a boss run needs, handed over by the conversation's actor.
pub struct ProjectRun {
    /// The project as stored (its context included).
    pub project: StoredProject,
    /// Shared services.
    pub services: Arc<Services>,
    /// The conversation's settings when the run started.
    pub settings: ConversationSettings,
    /// Where the boss tells the actor what happens.
    pub events: mpsc::Sender<ProjectEvent>,
    /// How the actor pauses or cancels it.
    pub control: ProjectControl,
    /// What the boss is told before it goes on (the user's answer), if any.
    pub answer: Option<String>,
}

/// How a run ended, as stored.
struct Ending {
    status: ProjectStatus,
    /// Why it paused, failed or was cancelled.
    reason: Option<String>,
    /// The question it asked, when blocked.
    question: Option<String>,
    /// Its result, when completed.
    summary: Option<String>,
}

/// Runs the boss until the project stops, stores how, and tells the actor.
pub async fn run_project(run: ProjectRun) {
    let project = run.project.id;
    let ending = boss(&run).await;
    let store = &run.services.store;
    let stored = match &ending.summary {
        Some(summary) => store.complete_project(project, summary).await,
        None => {
            store
                .set_project_status(
                    project,
                    ending.status,
                    ending.reason.as_deref(),
                    ending.question.as_deref(),
                )
                .await
        }
    };
    if let Err(e) = stored {
        tracing::error!(project = %project, error = %e, "could not record how a project stopped");
    }
    let stopped = StoredProject {
        status: ending.status,
        reason: ending.reason,
        question: ending.question,
        result: ending.summary,
        ..run.project.clone()
    };
    let text = outcome_text(&stopped);
    let event = ProjectEvent::Stopped {
        project,
        status: ending.status,
        text,
    };
    // The actor outlives its projects' tasks; if it is gone, the service is
    // stopping and the outcome is posted after the restart.
    let _ = run.events.send(event).await;
}

async fn boss(run: &ProjectRun) -> Ending {
    let services = &run.services;
    let project = &run.project;
    let config = &services.config;
    let model = boss_model(services, &run.settings);
    let mut history: Vec<Message> = match serde_json::from_str(&project.transcript) {
        Ok(history) => history,
        Err(e) => {
            tracing::warn!(project = %project.id, error = %e, "a project's saved context is unreadable; starting it over");
            Vec::new()
        }
    };
    if history.is_empty() {
        history.push(Message::user(prompt::project_brief(
            &project.goal,
            project.plan.as_deref(),
        )));
    } else if let Some(note) = resume_note(run).await {
        history.push(Message::user(note));
    }
    let (worker_events, mut worker_events_rx) = mpsc::channel(WORKER_EVENTS);
    let meter = Arc::new(UsageMeter::default());
    let earlier_workers = services
        .store
        .workers(project.turn)
        .await
        .map_or(0, |workers| workers.len());
    let limits = Limits::for_project(config, run.settings.greedy);
    let pool = WorkerPool::new(
        services.clone(),
        project.key.clone(),
        project.turn,
        &run.settings,
        worker_events,
        meter.clone(),
    )
    .with_limits(limits)
    .with_priority(Priority::Project)
    .numbered_after(u32::try_from(earlier_workers).unwrap_or(u32::MAX));
    let state = BossState::new(
        project.id,
        project.key.clone(),
        project.turn,
        services.store.clone(),
        run.events.clone(),
    );
    let toolbox = ProjectTools {
        delegation: DelegationTools {
            shelf: None,
            pool: &pool,
            tools: &services.tools,
        },
        state: &state,
    };
    let before = services
        .store
        .load_turn(project.turn)
        .await
        .ok()
        .flatten()
        .map(|turn| turn.usage)
        .unwrap_or_default();
    let observer = BossObserver {
        run,
        meter: &meter,
        state: &state,
        before,
        rounds: std::sync::atomic::AtomicU64::new(project.rounds),
    };
    let system = prompt::project_system(&run.settings);
    let agent = Agent {
        model: &model,
        system: &system,
        toolbox: &toolbox,
        effort: run.settings.effort,
        max_rounds: limits.orchestrator_rounds,
        limiter: &services.limiter,
        priority: Priority::Project,
        conversation: &project.key,
        retry: Some(&services.retry),
        observer: &observer,
    };
    state
        .log(
            EventKind::Message,
            &format!("running: {}", headline(&project.goal)),
        )
        .await;
    let ending = {
        let working = agent.run(&mut history);
        tokio::pin!(working);
        loop {
            tokio::select! {
                biased;
                () = run.control.cancel.cancelled() => break Stop::Cancelled,
                () = run.control.pause.cancelled() => break Stop::Paused,
                end = state.ended() => break Stop::Asked(end),
                Some(event) = worker_events_rx.recv() => forward(run, event),
                result = &mut working => break match result {
                    Ok(output) => Stop::Asked(BossEnd::Complete(output.text)),
                    Err(e) => {
                        tracing::warn!(project = %project.id, error = %e, "a project's boss failed");
                        Stop::Failed(e.user_message())
                    }
                },
            }
        }
    };
    match &ending {
        Stop::Paused | Stop::Asked(BossEnd::Blocked(_)) => {
            // Running workers finish their current call first.
            tokio::select! {
                () = run.control.cancel.cancelled() => {}
                () = pool.wait_running() => {}
            }
        }
        Stop::Cancelled | Stop::Failed(_) | Stop::Asked(_) => {}
    }
    pool.shutdown().await;
    while let Ok(event) = worker_events_rx.try_recv() {
        forward(run, event);
    }
    // The boss's context as of its last whole round, and all its tokens.
    observer.save(&history).await;
    match ending {
        Stop::Cancelled => Ending::now(
            ProjectStatus::Cancelled,
            Some("cancelled by /project cancel"),
        ),
        Stop::Paused => Ending::now(ProjectStatus::Paused, Some("paused by /project pause")),
        Stop::Failed(reason) => Ending::now(ProjectStatus::Failed, Some(&reason)),
        Stop::Asked(BossEnd::OverBudget(reason)) => {
            Ending::now(ProjectStatus::Failed, Some(&reason))
        }
        Stop::Asked(BossEnd::Blocked(question)) => Ending {
            status: ProjectStatus::Paused,
            reason: Some("waiting for the user's answer".into()),
            question: Some(question),
            summary: None,
        },
        Stop::Asked(BossEnd::Complete(summary)) => Ending {
            status: ProjectStatus::Completed,
            reason: None,
            question: None,
            summary: Some(if summary.trim().is_empty() {
                "(The project ended without a summary.)".to_owned()
            } else {
                summary
            }),
        },
    }
}

/// Why the boss loop stopped.
enum Stop {
    Cancelled,
    Paused,
    Failed(String),
    Asked(BossEnd),
}

impl Ending {
    fn now(status: ProjectStatus, reason: Option<&str>) -> Ending {
        Ending {
            status,
            reason: reason.map(str::to_owned),
            question: None,
            summary: None,
        }
    }
}

/// Passes a worker's event to the actor, tagged with the project.
fn forward(run: &ProjectRun, event: WorkerEvent) {
    let event = ProjectEvent::Worker {
        project: run.project.id,
        event,
    };
    // Display only: a full channel loses a line of verbose output, no work.
    let _ = run.events.try_send(event);
}

/// What a boss going on from stored state is told: the user's answer, and
/// what became of the workers that were running when it stopped.
async fn resume_note(run: &ProjectRun) -> Option<String> {
    let store = &run.services.store;
    let project = &run.project;
    let mut note = Vec::new();
    if let Some(question) = &project.question {
        note.push(format!("You asked the user: {question}"));
    }
    if let Some(answer) = &run.answer {
        note.push(format!("The user answers: {answer}"));
    }
    let workers = store.workers(project.turn).await.unwrap_or_default();
    if !workers.is_empty() {
        note.push(
            "The project was stopped and now goes on. Workers you started before cannot be \
             re-briefed: spawn new ones for anything left. Your earlier workers:"
                .to_owned(),
        );
        for worker in workers {
            let outcome = match (&worker.result, &worker.error) {
                (Some(result), _) => format!("result: {}", excerpt(result)),
                (None, Some(error)) => format!(
                    "interrupted or failed ({error}); its brief was: {}",
                    excerpt(&worker.brief)
                ),
                (None, None) => format!("no result; its brief was: {}", excerpt(&worker.brief)),
            };
            note.push(format!(
                "- {} ({}), {}: {outcome}",
                worker.worker_id, worker.label, worker.status
            ));
        }
    }
    (!note.is_empty()).then(|| note.join("\n"))
}

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(RESULT_EXCERPT) {
        Some((end, _)) => format!("{}… (cut)", &text[..end]),
        None => text.to_owned(),
    }
}

/// Counts the boss's tokens, saves its context after every round, and
/// stops it at a budget's hard cap.
struct BossObserver<'a> {
    run: &'a ProjectRun,
    meter: &'a UsageMeter,
    state: &'a BossState,
    /// The boss's tokens from earlier runs.
    before: Usage,
    rounds: std::sync::atomic::AtomicU64,
}

impl BossObserver<'_> {
    fn usage(&self) -> Usage {
        let mut usage = self.before;
        usage.add(self.meter.orchestrator());
        usage
    }

    async fn save(&self, history: &[Message]) {
        let transcript = match serde_json::to_string(history) {
            Ok(transcript) => transcript,
            Err(e) => {
                tracing::error!(project = %self.run.project.id, error = %e, "cannot serialize a project's context");
                return;
            }
        };
        let rounds = self.rounds.load(std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = self
            .run
            .services
            .store
            .save_project_transcript(self.run.project.id, &transcript, rounds, self.usage())
            .await
        {
            tracing::warn!(project = %self.run.project.id, error = %e, "could not save a project's context");
        }
    }
}

#[async_trait::async_trait]
impl AgentObserver for BossObserver<'_> {
    async fn on_usage(&self, model: &ModelRef, usage: Usage) {
        self.meter.on_usage(model, usage).await;
    }

    async fn on_round(&self, history: &[Message]) {
        self.rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.save(history).await;
        let services = &self.run.services;
        let config = &services.config;
        if !config.budget.is_set() {
            return;
        }
        let allowance = budget::allowance(
            &services.store,
            &config.models,
            &config.budget,
            &self.run.project.key,
        )
        .await;
        if let Ok(Allowance::Refused(text)) = allowance {
            self.state.stop_over_budget(text);
        }
    }
}
