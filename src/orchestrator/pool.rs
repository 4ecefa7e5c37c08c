//! The workers of one orchestrator turn: start, re-brief, await, close and
//! cancel them, and make sure none outlives the turn.
//!
//! `await_workers` reports finished runs in the order they finished: each
//! run takes a pool-wide finish number when it ends ([`RunState::finished`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tracing::Instrument;

use baton_channel::{ConversationKey, Effort, WorkerEvent, WorkerId, WorkerStatus};
use futures::future::select_all;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::limits::Limits;
use super::prompt;
use super::worker::{Brief, RunState, WorkerTask};
use crate::agent::Priority;
use crate::budget::UsageMeter;
use crate::config::routing::{self, AgentRole, RouteRequest, Specialty, WorkerProfile};
use crate::domain::ConversationSettings;
use crate::llm::models::ModelHandle;
use crate::services::Services;
use crate::store::{EventKind, NewWorker, TurnId};
use crate::tools::ToolError;

/// How long a cancelled worker gets to record its end before it is aborted.
const CANCEL_GRACE: Duration = Duration::from_secs(2);
/// How long `await_workers` waits, after a worker finished, for others
/// finishing close behind it, so that they are reported in one round.
pub const GATHER: Duration = Duration::from_millis(100);

/// What `spawn_worker` asks for.
#[derive(Debug, Clone, Default)]
pub struct SpawnRequest {
    /// The brief.
    pub prompt: String,
    /// A short label for the verbose thread.
    pub label: Option<String>,
    /// Effort for this worker (the conversation's default when unset).
    pub effort: Option<Effort>,
    /// A specialty: its model (when configured) and its preamble.
    pub specialty: Option<Specialty>,
    /// A named worker profile from `[models.profiles]`.
    pub profile: Option<String>,
    /// Files from the conversation the worker gets with its brief.
    pub attachments: Vec<crate::media::Ready>,
}

/// One worker's slot in the pool.
struct Slot {
    /// Its spawn number (`w3` is 3): the pool lists workers in this order.
    number: u32,
    label: String,
    /// The model it runs on (effort of follow-ups is clamped to it).
    model: ModelHandle,
    briefs: mpsc::Sender<Brief>,
    /// Shared with the worker task: the pool starts runs, the task ends them.
    state: Arc<watch::Sender<RunState>>,
    /// Cancels the current run.
    cancel: CancellationToken,
    /// The last run whose end `await_workers` reported.
    reported_run: u32,
    /// Aborts the task when the slot is dropped.
    _task: AbortOnDropHandle<()>,
}

impl Slot {
    fn status(&self) -> WorkerStatus {
        self.state.borrow().status
    }
}

/// The workers of one turn.
pub struct WorkerPool {
    services: Arc<Services>,
    key: ConversationKey,
    turn: TurnId,
    default_effort: Effort,
    /// The conversation's `/model` choice, which workers follow too.
    conversation_model: Option<String>,
    events: mpsc::Sender<WorkerEvent>,
    /// Counts the turn's tokens.
    meter: Arc<UsageMeter>,
    /// The workers' round limit and timeout (raised by `/greedy`).
    limits: Limits,
    /// Runs finished so far; each finishing run takes the next number.
    finishes: Arc<AtomicU64>,
    /// The workers' place in the model-call limiter's queue.
    priority: Priority,
    /// A std mutex: never held across an `.await`.
    slots: Mutex<BTreeMap<WorkerId, Slot>>,
    /// Slots promised to spawns that are still starting their worker.
    reserved: AtomicUsize,
    spawned: AtomicU32,
}

/// A slot promised to a starting worker; it counts against the limit until
/// the worker is in the pool (or the spawn gave up).
struct Reservation<'a>(&'a AtomicUsize);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl WorkerPool {
    /// An empty pool for `turn`; worker events go to `events`.
    pub fn new(
        services: Arc<Services>,
        key: ConversationKey,
        turn: TurnId,
        settings: &ConversationSettings,
        events: mpsc::Sender<WorkerEvent>,
        meter: Arc<UsageMeter>,
    ) -> Self {
        Self {
            limits: Limits::new(&services.config.orchestrator, settings.greedy),
            services,
            key,
            turn,
            default_effort: settings.effort,
            conversation_model: settings.model.clone(),
            events,
            meter,
            finishes: Arc::new(AtomicU64::new(0)),
            priority: Priority::Worker,
            slots: Mutex::new(BTreeMap::new()),
            reserved: AtomicUsize::new(0),
            spawned: AtomicU32::new(0),
        }
    }

    fn slots(&self) -> MutexGuard<'_, BTreeMap<WorkerId, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a worker on its brief; it runs in the background.
    pub async fn spawn(&self, request: SpawnRequest) -> Result<Value, ToolError> {
        if request.prompt.trim().is_empty() {
            return Err(ToolError::BadArguments("prompt must not be empty".into()));
        }
        let max = self.services.config.orchestrator.max_workers;
        let models = &self.services.models;
        let profile = match &request.profile {
            Some(name) => Some(
                routing::profile(&models.config().profiles, name)
                    .map_err(ToolError::BadArguments)?,
            ),
            None => None,
        };
        let specialty = request.specialty.or(profile.and_then(|p| p.specialty));
        let model = self.worker_model(RouteRequest {
            conversation: self.conversation_model.as_deref(),
            profile,
            specialty,
            simple: false,
        });
        let requested = request
            .effort
            .or(profile.and_then(|p| p.effort))
            .unwrap_or(self.default_effort);
        let effort = model.clamp_effort(requested);
        if !model.spec.vision
            && request
                .attachments
                .iter()
                .any(crate::media::Ready::is_image)
        {
            return Err(ToolError::BadArguments(format!(
                "the worker model {} cannot see images; give this worker only files, or describe the image in the prompt",
                model.model
            )));
        }
        let (number, reservation) = {
            let slots = self.slots();
            if slots.len() + self.reserved.load(Ordering::SeqCst) >= max {
                return Err(ToolError::failed(format!(
                    "worker limit reached ({max} open); close_worker finished workers first"
                )));
            }
            self.reserved.fetch_add(1, Ordering::SeqCst);
            let number = self.spawned.fetch_add(1, Ordering::Relaxed) + 1;
            (number, Reservation(&self.reserved))
        };
        let id = WorkerId(format!("w{number}"));
        let label = request
            .label
            .filter(|l| !l.trim().is_empty())
            .or_else(|| request.profile.clone())
            .or_else(|| specialty.map(|s| s.to_string()))
            .unwrap_or_else(|| format!("worker {number}"));
        let store = &self.services.store;
        let record = NewWorker {
            worker_id: id.clone(),
            label: label.clone(),
            brief: request.prompt.clone(),
            effort,
            model: model.model.to_string(),
        };
        if let Err(e) = store.insert_worker(self.turn, &record).await {
            tracing::warn!(worker = %id, error = %e, "could not record a worker");
        }
        self.log_delegation(&id, &request.prompt).await;

        let (briefs_tx, briefs_rx) = mpsc::channel(1);
        let state = Arc::new(watch::Sender::new(RunState::started(1, Default::default())));
        let task = WorkerTask {
            id: id.clone(),
            label: label.clone(),
            system: prompt::worker_system(
                specialty,
                profile.and_then(|p| p.instructions.as_deref()),
            ),
            model: model.clone(),
            meter: self.meter.clone(),
            services: self.services.clone(),
            key: self.key.clone(),
            turn: self.turn,
            events: self.events.clone(),
            state: state.clone(),
            briefs: briefs_rx,
            max_rounds: self.limits.worker_rounds,
            timeout: self.limits.worker_timeout,
            finishes: self.finishes.clone(),
            priority: self.priority,
        };
        let cancel = CancellationToken::new();
        let brief = Brief {
            prompt: request.prompt,
            attachments: request.attachments,
            effort,
            cancel: cancel.clone(),
        };
        // The channel is new and holds one brief: this cannot fail.
        let _ = briefs_tx.try_send(brief);
        let handle = AbortOnDropHandle::new(tokio::spawn(
            crate::metrics::count_worker(task.run()).in_current_span(),
        ));
        self.slots().insert(
            id.clone(),
            Slot {
                number,
                label: label.clone(),
                model: model.clone(),
                briefs: briefs_tx,
                state,
                cancel,
                reported_run: 0,
                _task: handle,
            },
        );
        drop(reservation);
        let mut result = json!({
            "worker_id": id.0,
            "label": label,
            "status": "running",
            "effort": effort.as_str(),
            "model": model.model.to_string(),
        });
        if let Some(specialty) = specialty {
            result["specialty"] = json!(specialty.as_str());
        }
        if effort != requested {
            result["effort_clamped_from"] = json!(requested.as_str());
        }
        Ok(result)
    }

    /// Gives an idle worker a follow-up; it keeps its earlier context.
    pub async fn send(
        &self,
        id: &WorkerId,
        prompt: String,
        effort: Option<Effort>,
    ) -> Result<Value, ToolError> {
        if prompt.trim().is_empty() {
            return Err(ToolError::BadArguments("prompt must not be empty".into()));
        }
        let requested = effort.unwrap_or(self.default_effort);
        let effort = {
            let mut slots = self.slots();
            let slot = slots.get_mut(id).ok_or_else(|| unknown_worker(id))?;
            let effort = slot.model.clamp_effort(requested);
            let status = slot.status();
            if status == WorkerStatus::Running {
                return Err(ToolError::failed(format!(
                    "{id} is still running; await_workers first"
                )));
            }
            let cancel = CancellationToken::new();
            let brief = Brief {
                prompt: prompt.clone(),
                attachments: Vec::new(),
                effort,
                cancel: cancel.clone(),
            };
            slot.briefs
                .try_send(brief)
                .map_err(|_| ToolError::failed(format!("{id} is not accepting work")))?;
            slot.cancel = cancel;
            // Publish the new run at once, so awaiting it waits for its end.
            slot.state.send_modify(|state| {
                *state = RunState::started(state.run + 1, state.usage);
            });
            effort
        };
        if let Err(e) = self
            .services
            .store
            .update_worker(
                self.turn,
                id,
                WorkerStatus::Running,
                None,
                None,
                Default::default(),
            )
            .await
        {
            tracing::warn!(worker = %id, error = %e, "could not record a worker's new brief");
        }
        self.log_delegation(id, &prompt).await;
        let mut result =
            json!({ "worker_id": id.0, "status": "running", "effort": effort.as_str() });
        if effort != requested {
            result["effort_clamped_from"] = json!(requested.as_str());
        }
        Ok(result)
    }

    /// Waits until a worker (of `ids`, or of all) has a finished run that
    /// was not reported yet, then reports every such run, in the order they
    /// finished (at most `max_results` of them; the rest stay for the next
    /// call): `{"finished": [...], "still_running": [...]}`.
    ///
    /// Workers that finish close together are reported together: once one
    /// has finished, the call waits up to [`GATHER`] more while others of
    /// those awaited still run (and `max_results` leaves room), returning as
    /// soon as none does. A model round costs seconds and resends the whole
    /// prompt, so a few milliseconds here save whole rounds.
    pub async fn await_next(
        &self,
        ids: Option<Vec<WorkerId>>,
        max_results: Option<usize>,
    ) -> Result<Value, ToolError> {
        if max_results == Some(0) {
            return Err(ToolError::BadArguments(
                "max_results must be at least 1".into(),
            ));
        }
        let mut gather_until: Option<tokio::time::Instant> = None;
        loop {
            let mut waiting = Vec::new();
            {
                let mut slots = self.slots();
                if let Some(ids) = &ids
                    && let Some(unknown) = ids.iter().find(|id| !slots.contains_key(*id))
                {
                    return Err(unknown_worker(unknown));
                }
                let wanted = |id: &WorkerId| ids.as_ref().is_none_or(|ids| ids.contains(id));
                let mut finished: Vec<(u64, WorkerId)> = slots
                    .iter()
                    .filter(|(id, _)| wanted(id))
                    .filter_map(|(id, slot)| {
                        let state = slot.state.borrow();
                        let unreported =
                            state.status.is_finished() && state.run > slot.reported_run;
                        unreported.then(|| (state.finished, id.clone()))
                    })
                    .collect();
                let running = slots
                    .iter()
                    .any(|(id, slot)| wanted(id) && slot.status() == WorkerStatus::Running);
                let room = finished.len() < max_results.unwrap_or(usize::MAX);
                let now = tokio::time::Instant::now();
                let gathering = !finished.is_empty()
                    && running
                    && room
                    && *gather_until.get_or_insert(now + GATHER) > now;
                if !finished.is_empty() && !gathering {
                    finished.sort();
                    finished.truncate(max_results.unwrap_or(usize::MAX));
                    let reports: Vec<Value> = finished
                        .iter()
                        .filter_map(|(_, id)| {
                            let slot = slots.get_mut(id)?;
                            let state = slot.state.borrow().clone();
                            slot.reported_run = state.run;
                            Some(report(id, &slot.label, &state))
                        })
                        .collect();
                    let still_running: Vec<String> = in_spawn_order(&slots)
                        .into_iter()
                        .filter(|(_, slot)| slot.status() == WorkerStatus::Running)
                        .map(|(id, _)| id.0.clone())
                        .collect();
                    return Ok(json!({ "finished": reports, "still_running": still_running }));
                }
                for (id, slot) in slots.iter() {
                    if wanted(id) && slot.status() == WorkerStatus::Running {
                        waiting.push(slot.state.subscribe());
                    }
                }
            }
            if waiting.is_empty() {
                return Err(ToolError::failed(
                    "no worker is running and every result was already reported",
                ));
            }
            let ends = waiting.into_iter().map(|mut state| {
                Box::pin(async move {
                    let _ = state.wait_for(|s| s.status.is_finished()).await;
                })
            });
            match gather_until {
                Some(until) => {
                    let _ = tokio::time::timeout_at(until, select_all(ends)).await;
                }
                None => {
                    select_all(ends).await;
                }
            }
        }
    }

    /// Closes a worker and frees its slot; a running one is cancelled first.
    pub async fn close(&self, id: &WorkerId) -> Result<Value, ToolError> {
        let slot = self.slots().remove(id).ok_or_else(|| unknown_worker(id))?;
        let was = slot.status();
        slot.cancel.cancel();
        let usage = slot.state.borrow().usage;
        drop(slot);
        if let Err(e) = self
            .services
            .store
            .update_worker(self.turn, id, WorkerStatus::Closed, None, None, usage)
            .await
        {
            tracing::warn!(worker = %id, error = %e, "could not record a closed worker");
        }
        let mut result = json!({ "worker_id": id.0, "status": "closed" });
        if was == WorkerStatus::Running {
            result["note"] = json!("it was still running and was cancelled");
        }
        Ok(result)
    }

    /// Cancels a worker's current run, aborting its model and tool calls.
    /// The worker stays open (with its context) for `send_to_worker`.
    pub async fn cancel(&self, id: &WorkerId) -> Result<Value, ToolError> {
        let mut state = {
            let slots = self.slots();
            let slot = slots.get(id).ok_or_else(|| unknown_worker(id))?;
            let status = slot.status();
            if status != WorkerStatus::Running {
                return Ok(
                    json!({ "worker_id": id.0, "status": status.as_str(), "note": "it was not running" }),
                );
            }
            slot.cancel.cancel();
            slot.state.subscribe()
        };
        let ended = tokio::time::timeout(CANCEL_GRACE, state.wait_for(|s| s.status.is_finished()));
        let _ = ended.await;
        // The orchestrator knows about this end; do not report it again.
        if let Some(slot) = self.slots().get_mut(id) {
            slot.reported_run = slot.state.borrow().run;
        }
        Ok(json!({ "worker_id": id.0, "status": "cancelled" }))
    }

    /// The worker model routing picks; the default worker model when the
    /// conversation's `/model` is no longer configured.
    fn worker_model(&self, request: RouteRequest<'_>) -> ModelHandle {
        let models = &self.services.models;
        match models.route(AgentRole::Worker, request) {
            Ok((model, _)) => model,
            Err(e) => {
                tracing::warn!(conversation = %self.key, error = %e, "no such worker model; using the default");
                models.worker.clone()
            }
        }
    }

    /// Runs the workers under `limits` instead of the turn's (a project's).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Queues the workers' model calls at `priority` (a project's go last).
    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Numbers new workers after `earlier` ones (a resumed project's pool
    /// goes on from its earlier runs' `wN`).
    pub fn numbered_after(self, earlier: u32) -> Self {
        self.spawned.store(earlier, Ordering::Relaxed);
        self
    }

    /// Every worker's state without waiting (`check_workers`): id, label,
    /// status, model, tokens, seconds into its current run, latest step.
    pub fn check_workers(&self) -> Value {
        let slots = self.slots();
        let workers: Vec<Value> = in_spawn_order(&slots)
            .into_iter()
            .map(|(id, slot)| {
                let state = slot.state.borrow();
                json!({
                    "worker_id": id.0,
                    "label": slot.label,
                    "status": state.status.as_str(),
                    "model": slot.model.model.to_string(),
                    "usage": {
                        "input_tokens": state.usage.input_tokens,
                        "output_tokens": state.usage.output_tokens,
                    },
                    "elapsed_secs": state.started_at.elapsed().as_secs(),
                    "latest": state.progress,
                })
            })
            .collect();
        json!({ "workers": workers })
    }

    /// Waits until no worker is running (each finishes its current run,
    /// within its timeout).
    pub async fn wait_running(&self) {
        let running: Vec<_> = self
            .slots()
            .values()
            .filter(|slot| slot.status() == WorkerStatus::Running)
            .map(|slot| slot.state.subscribe())
            .collect();
        let ends = running.into_iter().map(|mut state| async move {
            let _ = state.wait_for(|s| s.status.is_finished()).await;
        });
        futures::future::join_all(ends).await;
    }

    /// The configured worker profiles.
    pub fn profiles(&self) -> &BTreeMap<String, WorkerProfile> {
        &self.services.models.config().profiles
    }

    /// The workers running now (id and label), in spawn order.
    pub fn running(&self) -> Vec<(WorkerId, String)> {
        in_spawn_order(&self.slots())
            .into_iter()
            .filter(|(_, slot)| slot.status() == WorkerStatus::Running)
            .map(|(id, slot)| (id.clone(), slot.label.clone()))
            .collect()
    }

    /// The effort levels the models routing may pick for this
    /// conversation's workers support (the default worker model's, each
    /// specialty's and each profile's), lowest first; `off` when none.
    pub fn worker_efforts(&self) -> Vec<Effort> {
        let models = &self.services.models;
        let conversation = self.conversation_model.as_deref();
        let plain = RouteRequest {
            conversation,
            ..RouteRequest::default()
        };
        let specialties = Specialty::ALL.map(|specialty| RouteRequest {
            specialty: Some(specialty),
            ..plain
        });
        let profiles = self.profiles().values().map(|profile| RouteRequest {
            profile: Some(profile),
            ..plain
        });
        let mut efforts: Vec<Effort> = std::iter::once(plain)
            .chain(specialties)
            .chain(profiles)
            .flat_map(|request| match models.route(AgentRole::Worker, request) {
                Ok((model, _)) => model.spec.efforts,
                // `spawn_worker` falls back to the default worker model.
                Err(_) => models.worker.spec.efforts.clone(),
            })
            .collect();
        efforts.sort();
        efforts.dedup();
        if efforts.is_empty() {
            efforts.push(Effort::Off);
        }
        efforts
    }

    /// Cancels every running worker because the orchestrator answered
    /// while they ran: gives each a moment to record its end, and records
    /// in the event log which were cancelled. Returns them (id, label).
    pub async fn cancel_running(&self) -> Vec<(WorkerId, String)> {
        let mut ends = Vec::new();
        let mut cancelled = Vec::new();
        for (id, slot) in in_spawn_order(&self.slots()) {
            if slot.status() == WorkerStatus::Running {
                slot.cancel.cancel();
                cancelled.push((id.clone(), slot.label.clone()));
                let mut state = slot.state.subscribe();
                ends.push(async move {
                    let _ = state.wait_for(|s| s.status.is_finished()).await;
                });
            }
        }
        if cancelled.is_empty() {
            return cancelled;
        }
        let _ = tokio::time::timeout(CANCEL_GRACE, futures::future::join_all(ends)).await;
        {
            // The orchestrator has answered: these ends are not reported.
            let mut slots = self.slots();
            for (id, _) in &cancelled {
                if let Some(slot) = slots.get_mut(id) {
                    slot.reported_run = slot.state.borrow().run;
                }
            }
        }
        let names: Vec<String> = cancelled
            .iter()
            .map(|(id, label)| format!("{id} ({label})"))
            .collect();
        let body = format!(
            "cancelled {}: the orchestrator answered while they were still running",
            names.join(", ")
        );
        tracing::info!(conversation = %self.key, workers = %names.join(", "), "cancelled workers still running at the answer");
        if let Err(e) = self
            .services
            .store
            .record_event(
                &self.key,
                Some(self.turn),
                EventKind::Error,
                "orchestrator",
                &body,
            )
            .await
        {
            tracing::warn!(conversation = %self.key, error = %e, "could not record cancelled workers");
        }
        cancelled
    }

    /// Ends the turn's workers: cancels every running one, gives each a
    /// moment to record its end, then aborts whatever is left.
    pub async fn shutdown(&self) {
        let slots = std::mem::take(&mut *self.slots());
        let mut ends = Vec::new();
        for slot in slots.values() {
            if slot.status() == WorkerStatus::Running {
                slot.cancel.cancel();
                let mut state = slot.state.subscribe();
                ends.push(async move {
                    let _ = state.wait_for(|s| s.status.is_finished()).await;
                });
            }
        }
        let _ = tokio::time::timeout(CANCEL_GRACE, futures::future::join_all(ends)).await;
        drop(slots);
    }

    async fn log_delegation(&self, id: &WorkerId, prompt: &str) {
        if let Err(e) = self
            .services
            .store
            .record_event(
                &self.key,
                Some(self.turn),
                EventKind::Delegation,
                &id.0,
                prompt,
            )
            .await
        {
            tracing::warn!(worker = %id, error = %e, "could not record a delegation");
        }
    }
}

fn unknown_worker(id: &WorkerId) -> ToolError {
    ToolError::BadArguments(format!("unknown worker_id {:?}", id.0))
}

/// The slots in spawn order (`w2` before `w10`).
fn in_spawn_order(slots: &BTreeMap<WorkerId, Slot>) -> Vec<(&WorkerId, &Slot)> {
    let mut ordered: Vec<(&WorkerId, &Slot)> = slots.iter().collect();
    ordered.sort_by_key(|(_, slot)| slot.number);
    ordered
}

/// One finished run as `await_workers` reports it; `cut_short` only when
/// the round limit cut it short.
fn report(id: &WorkerId, label: &str, state: &RunState) -> Value {
    let mut result = json!({
        "worker_id": id.0,
        "label": label,
        "status": state.status.as_str(),
        "usage": { "input_tokens": state.usage.input_tokens, "output_tokens": state.usage.output_tokens },
    });
    match (&state.result, &state.error) {
        (Some(text), _) => result["result"] = json!(text),
        (None, Some(error)) => result["error"] = json!(error),
        (None, None) => {}
    }
    if state.cut_short {
        result["cut_short"] = json!(true);
    }
    result
}
