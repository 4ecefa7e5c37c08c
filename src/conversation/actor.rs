//! The conversation actor: owns one conversation's settings, its queue and
//! its one [`Reply`] handle, and runs one turn at a time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use baton_channel::{
    Author, ChannelError, Command, CommandError, ConversationKey, Files, Inbound, Origin, Reply,
    WorkerEvent, WorkerEventKind, WorkerId,
};
use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::backlog::{Backlog, Overflow};
use super::commands;
use super::context::{self, RecentTranscript};
use super::ownership::{ForwardedInteraction, Lease};
use super::projects::ActorProjects;
use super::turn::{TurnOutcome, TurnRequest, run_turn};
use super::turn_end::TurnRow;
use crate::budget::{self, Allowance, Spend, UsageMeter};
use crate::config::routing::{self, AgentRole, RouteRequest};
use crate::domain::{ConversationSettings, Mode};
use crate::llm::Message;
use crate::llm::models::ModelHandle;
use crate::services::Services;
use crate::store::{
    EventKind, MessageId, OutboxId, Role, StoredMessage, StoredProject, TurnId, UnsentReply, now_ms,
};

/// How often the typing indicator is refreshed while a turn runs.
const TYPING_REFRESH: Duration = Duration::from_secs(4);
/// The notice of a turn whose budget could not be checked.
const BUDGET_UNKNOWN: &str =
    "I could not check today's budget, so I answer without workers this time.";
/// How long a stopped turn gets to wind down before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The answer to a `/stop` that cut a reply short while it was being sent.
pub(super) const STOPPED: &str = "Stopped.";
/// Control messages held back while a reply is posted or a message's files
/// are read, at most (the rest wait in the bounded control channel).
pub(super) const DEFERRED_LIMIT: usize = 16;
/// Worker events buffered between a turn and its actor.
const EVENT_BUFFER: usize = 64;
/// How long to wait before reading waiting messages again after the store
/// failed.
const BACKLOG_RETRY: Duration = Duration::from_secs(1);

/// A command on its way to the actor.
#[derive(Debug)]
pub(crate) struct ControlMessage {
    pub author: Author,
    pub origin: Origin,
    pub command: Result<Command, CommandError>,
    /// The instance that received the command, when it is not this one (a
    /// command forwarded in a cluster): an interaction's answer goes back
    /// there, since only it holds the interaction.
    pub received_at: Option<String>,
}

impl ControlMessage {
    /// `/stop` and `/status` bypass the queue: they are about the running
    /// turn. Every other command keeps its place among the messages.
    pub fn bypasses_queue(&self) -> bool {
        matches!(self.command, Ok(Command::Stop | Command::Status))
    }
}

/// What reaches an actor at once, ahead of its queue.
#[derive(Debug)]
pub(crate) enum Control {
    /// A command: `/stop` and `/status`, or one that found the queue full.
    Command(ControlMessage),
    /// A short notice the engine gives by itself (flood control).
    Notice { origin: Origin, text: String },
    /// A project a restart left running, or whose outcome was not posted.
    Project(StoredProject),
}

/// A user's message, already in the store.
#[derive(Debug)]
pub(crate) struct StoredInbound {
    /// Its transcript row.
    pub id: MessageId,
    /// The message.
    pub inbound: Inbound,
}

/// What waits in an actor's queue, in the order it arrived.
#[derive(Debug)]
pub(crate) enum Queued {
    /// A message for a turn.
    Message(StoredInbound),
    /// A command that keeps its place among the messages.
    Command(ControlMessage),
    /// `/reset`: the context restarts after `through`, the newest message
    /// stored when it was sent (messages sent after it stay in context).
    Reset {
        message: ControlMessage,
        through: Option<MessageId>,
    },
    /// A reply an earlier stop left stored but not sent.
    Resend(UnsentReply),
}

/// The sending side of a live actor (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct ConversationHandle {
    /// Tells this actor apart from a later one for the same key.
    pub generation: u64,
    /// Items are boxed: a channel allocates 32 slots up front, and an idle
    /// conversation should cost little memory.
    pub queue: mpsc::Sender<Box<Queued>>,
    pub control: mpsc::Sender<Box<Control>>,
    /// Set while messages wait in the store because the queue was full.
    pub overflow: Arc<Overflow>,
}

/// The registry's map of live actors.
pub(crate) type LiveActors = DashMap<ConversationKey, ConversationHandle>;

/// What the actor knows of the turn it is running.
struct RunningTurn {
    workers: BTreeMap<WorkerId, String>,
    /// What the turn used so far.
    meter: Arc<UsageMeter>,
}

/// What the actor decided before a turn starts.
struct TurnPlan {
    /// The turn's row, in orchestrator mode.
    turn: Option<TurnId>,
    /// The settings for this turn (budgets may have narrowed them).
    settings: ConversationSettings,
    /// The orchestrator's model.
    model: ModelHandle,
    /// Counts the turn's tokens as they are used.
    meter: Arc<UsageMeter>,
    /// The context's attachments, for workers.
    shelf: Arc<crate::media::Shelf>,
}

pub(crate) struct Actor {
    pub key: ConversationKey,
    pub generation: u64,
    pub services: Arc<Services>,
    /// The conversation's one handle to its channel. Never shared.
    pub reply: Box<dyn Reply>,
    /// The platform's file API (read-only), for attachments.
    pub files: Option<Arc<dyn Files>>,
    pub settings: ConversationSettings,
    pub queue: mpsc::Receiver<Box<Queued>>,
    pub control: mpsc::Receiver<Box<Control>>,
    /// Control messages that arrived while a reply was being posted; they
    /// go before the rest of the control channel.
    pub deferred: VecDeque<Box<Control>>,
    /// Whether a turn is running (`drive`): a `/stop` during a post is then
    /// the turn's to handle.
    pub in_turn: bool,
    /// What was taken from the queue while a turn ran and must wait for it
    /// (a message, or `/reset`); it goes before the rest of the queue.
    pub pending: Option<Box<Queued>>,
    /// Set by the registry when messages wait in the store.
    pub overflow: Arc<Overflow>,
    /// Messages read back from the store, before the rest of the queue.
    pub backlog: Backlog,
    /// The conversation's running projects.
    pub projects: ActorProjects,
    pub live: Arc<LiveActors>,
    pub shutdown: CancellationToken,
    /// What the last finished turn used (`/status`).
    pub last_turn: Option<Spend>,
    /// The recent transcript, so a turn need not read it back.
    pub recent: RecentTranscript,
    /// Whether (and at which epoch) this instance holds the conversation.
    pub lease: Lease,
    /// Set when the fence closed under a turn (`ownership.rs`): the actor
    /// stops and leaves its conversation to the cluster's sweep.
    pub stranded: bool,
    /// While a command another instance received is answered: its
    /// interaction, answered through that instance.
    pub answering_for: Option<ForwardedInteraction>,
}

impl Actor {
    /// The actor's loop: commands at once, messages one turn at a time,
    /// and an exit after `idle_timeout` without events.
    pub async fn run(mut self) {
        match self.services.store.load_settings(&self.key).await {
            Ok(Some(settings)) => self.settings = settings,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(conversation = %self.key, error = %e, "could not load settings; using defaults");
            }
        }
        // On a cluster, only the instance holding the conversation runs it.
        self.lease = self.claim().await;
        if self.lease == Lease::Elsewhere {
            self.hand_over().await;
            return;
        }
        let idle = Duration::from_secs(self.services.config.engine.idle_timeout_secs);
        let remember = self.remember();
        // Once the registry lets go of this actor (`drain`), it finishes
        // what is queued and waits for its running projects' outcomes.
        let (mut control_open, mut queue_open) = (true, true);
        loop {
            if self.shutdown.is_cancelled()
                || (!control_open && !queue_open && !self.projects.any_running())
            {
                break;
            }
            if let Some(queued) = self.pending.take() {
                self.handle(queued).await;
                continue;
            }
            if let Some(message) = self.backlog.next(remember) {
                Box::pin(self.turn(message)).await;
                continue;
            }
            if self.overflow.is_set() && self.queue.is_empty() {
                self.read_backlog().await;
                continue;
            }
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                control = next_control(&mut self.deferred, &mut self.control), if control_open => match control {
                    Some(control) => self.control(*control, None).await,
                    None => control_open = false,
                },
                queued = self.queue.recv(), if queue_open => match queued {
                    Some(queued) => self.handle(queued).await,
                    None => queue_open = false,
                },
                () = self.overflow.marked() => {}
                event = self.projects.next_event() => self.project_event(event).await,
                () = tokio::time::sleep(idle) => {
                    if self.leave_registry() {
                        break;
                    }
                }
            }
        }
        // Whatever slipped in while leaving is still answered, in order.
        self.queue.close();
        self.control.close();
        while let Some(control) = self
            .deferred
            .pop_front()
            .or_else(|| self.control.try_recv().ok())
        {
            self.control(*control, None).await;
        }
        while !self.shutdown.is_cancelled() {
            let next = match self.pending.take() {
                Some(queued) => queued,
                None => match self.queue.try_recv() {
                    Ok(queued) => queued,
                    Err(_) => break,
                },
            };
            self.handle(next).await;
        }
        self.live
            .remove_if(&self.key, |_, handle| handle.generation == self.generation);
        self.release().await;
        tracing::debug!(conversation = %self.key, "conversation actor stopped");
    }

    /// How many message ids taken are remembered, against answering one
    /// twice when it reaches the actor both ways (queue and store).
    fn remember(&self) -> usize {
        self.services.config.engine.queue_capacity.saturating_mul(2)
    }

    /// Reads messages that wait in the store into the backlog; on a store
    /// failure, waits a moment before the loop tries again.
    async fn read_backlog(&mut self) {
        // In a cluster, wake-ups from other instances can come out of
        // order: read from the message after the last taken, not only
        // from the one a wake-up named.
        if matches!(self.lease, Lease::Held(_))
            && let Some(last) = self.backlog.last_taken()
        {
            self.overflow.mark(MessageId(last.0 + 1));
        }
        let store = &self.services.store;
        let limit = self.services.config.engine.queue_capacity;
        if let Err(e) = self
            .backlog
            .refill(&self.overflow, store, &self.key, limit)
            .await
        {
            tracing::warn!(conversation = %self.key, error = %e, "cannot read waiting messages; retrying");
            tokio::select! {
                () = self.shutdown.cancelled() => {}
                () = tokio::time::sleep(BACKLOG_RETRY) => {}
            }
        }
    }

    pub(super) async fn handle(&mut self, queued: Box<Queued>) {
        match *queued {
            // Taken from the store already (it raced the overflow flag).
            Queued::Message(inbound) if self.backlog.was_taken(inbound.id) => {}
            // Older messages wait in the store (another instance of a
            // cluster stored them and woke this one): they go first, and
            // this one, stored too, is read back behind them.
            Queued::Message(inbound)
                if self.overflow.from().is_some_and(|from| from < inbound.id) =>
            {
                self.read_backlog().await;
            }
            // In a cluster, other instances store this conversation's
            // messages too, and their wake-up may come after a younger
            // message reached the queue: what waits in the store since the
            // last message taken goes first (this one is read back with it).
            Queued::Message(inbound) if matches!(self.lease, Lease::Held(_)) => {
                self.catch_up(inbound.id).await;
            }
            // Boxed, so an idle actor's future does not carry a turn's state.
            Queued::Message(inbound) => {
                let remember = self.remember();
                self.backlog.note_taken(inbound.id, remember);
                Box::pin(self.turn(inbound)).await
            }
            Queued::Command(message) => self.command(message, None).await,
            Queued::Reset { message, through } => self.reset(&message.origin, through).await,
            Queued::Resend(unsent) => {
                tracing::info!(conversation = %self.key, outbox = unsent.id.0, "posting a reply an earlier stop left unsent");
                let origin = Origin::from_stored(self.key.platform(), unsent.reply_to.as_deref());
                self.post_stored(&origin, &unsent.text, unsent.id).await;
            }
        }
    }

    async fn reset(&mut self, origin: &Origin, through: Option<MessageId>) {
        self.recent.forget();
        let store = &self.services.store;
        let reset = match through {
            Some(through) => store.reset_context_through(&self.key, through).await,
            None => store.reset_context(&self.key).await,
        };
        let text = match reset {
            Ok(()) => "Context cleared: I start fresh from your next message.".to_owned(),
            Err(e) => format!("Could not clear the context: {e}"),
        };
        self.post(origin, &text).await;
    }

    /// Removes this actor from the registry if nothing is waiting for it.
    fn leave_registry(&self) -> bool {
        let queue_empty = self.queue.is_empty()
            && self.control.is_empty()
            && self.deferred.is_empty()
            && self.pending.is_none()
            && self.backlog.is_empty()
            && !self.projects.any_running();
        queue_empty
            && self
                .live
                .remove_if(&self.key, |_, handle| {
                    handle.generation == self.generation && !handle.overflow.is_set()
                })
                .is_some()
    }

    async fn control(&mut self, control: Control, running: Option<&RunningTurn>) {
        match control {
            Control::Command(message) => self.command(message, running).await,
            Control::Notice { origin, text } => self.post(&origin, &text).await,
            Control::Project(project) => self.take_up_project(project).await,
        }
    }

    async fn command(&mut self, message: ControlMessage, running: Option<&RunningTurn>) {
        self.answering_for = ForwardedInteraction::of(&message);
        self.answer_command(message, running).await;
        self.answering_for = None;
    }

    async fn answer_command(&mut self, message: ControlMessage, running: Option<&RunningTurn>) {
        let text = match message.command {
            Err(error) => error.to_string(),
            Ok(Command::Stop) => "Nothing is running.".to_owned(),
            Ok(Command::Status) => self.status(running).await,
            Ok(Command::Reset) => return self.reset(&message.origin, None).await,
            Ok(Command::Project(project)) => {
                return self.project_command(&message.origin, project).await;
            }
            Ok(command) => {
                let (settings, text) =
                    commands::apply(&self.settings, &command, &self.services.models);
                if settings != self.settings {
                    match self
                        .services
                        .store
                        .save_settings(&self.key, &settings)
                        .await
                    {
                        Ok(()) => self.settings = settings,
                        Err(e) => {
                            return self
                                .post(&message.origin, &format!("Could not save the setting: {e}"))
                                .await;
                        }
                    }
                }
                if running.is_some()
                    && matches!(
                        command,
                        Command::Orchestrator(Some(_))
                            | Command::Effort(Some(_))
                            | Command::Model(Some(_))
                            | Command::Greedy(Some(_))
                            | Command::Autonomy(Some(_))
                    )
                {
                    format!("{text} (from the next message on)")
                } else {
                    text
                }
            }
        };
        tracing::debug!(conversation = %self.key, author = %message.author.id, "command answered");
        self.post(&message.origin, &text).await;
    }

    async fn status(&self, running: Option<&RunningTurn>) -> String {
        let store = &self.services.store;
        let today = store
            .usage_by_model_since(Some(&self.key), budget::start_of_today_ms())
            .await
            .map(|parts| Spend::of(&parts, &self.services.config.models))
            .inspect_err(|e| {
                tracing::warn!(conversation = %self.key, error = %e, "cannot read today's usage")
            })
            .ok();
        let turn = match running {
            Some(running) => Some(commands::TurnSpend {
                running: true,
                spend: Spend::of(&running.meter.snapshot(), &self.services.config.models),
            }),
            None => self.last_turn.map(|spend| commands::TurnSpend {
                running: false,
                spend,
            }),
        };
        commands::status_text(commands::StatusView {
            settings: &self.settings,
            models: &self.services.models,
            running: running.map(|r| {
                r.workers
                    .iter()
                    .map(|(id, label)| (id.0.as_str(), label.as_str()))
                    .collect()
            }),
            today,
            turn,
            model_calls: self.services.limiter.load(),
        })
    }

    /// Runs one turn for a stored message, answering commands while it runs.
    async fn turn(&mut self, message: StoredInbound) {
        let store = self.services.store.clone();
        let StoredInbound {
            id: message_id,
            inbound,
        } = message;
        let origin = inbound.origin;
        tracing::debug!(conversation = %self.key, message = message_id.0, "turn starts");
        let history_limit = self.services.config.orchestrator.history_limit;
        if self.recent.is_loaded() {
            let message = StoredMessage {
                id: message_id,
                role: Role::User,
                author: Some(inbound.author.name.clone()),
                content: inbound.text.clone(),
                attachments: inbound.attachments.clone(),
            };
            self.recent.push(message, history_limit);
        } else {
            match store
                .history_through(&self.key, Some(message_id), history_limit)
                .await
            {
                Ok(history) => self.recent.load(&history),
                Err(e) => {
                    tracing::error!(conversation = %self.key, error = %e, "could not read the transcript");
                    return self
                        .post(
                            &origin,
                            "Sorry, I could not read this conversation's history; please try again.",
                        )
                        .await;
                }
            }
        }
        let services = &self.services;
        let config = &services.config;
        let allowance = budget::allowance(&store, &config.models, &config.budget, &self.key)
            .await
            .unwrap_or_else(|e| {
                // Neither refuse (a read glitch is no reason for silence)
                // nor spend freely: answer without workers, and say why.
                tracing::warn!(conversation = %self.key, error = %e, "cannot check the budget");
                Allowance::SingleOnly(BUDGET_UNKNOWN.to_owned())
            });
        let mut settings = self.settings.clone();
        let mut notice = None;
        match allowance {
            Allowance::Full => {}
            Allowance::SingleOnly(text) => {
                if settings.mode == Mode::Orchestrator {
                    settings.mode = Mode::Single;
                    notice = Some(text);
                }
            }
            Allowance::Refused(text) => {
                return self
                    .refuse(message_id, &origin, &text, "daily budget used up")
                    .await;
            }
        }
        let model = self.orchestrator_model(&settings, &inbound.text);
        let files = match self
            .read_files(message_id, &inbound.attachments, &model)
            .await
        {
            Ok(files) => files,
            Err(refused) => {
                return self
                    .refuse(message_id, &origin, &refused.text, refused.why)
                    .await;
            }
        };
        // An orchestrator turn is recorded now: its workers' rows point at
        // it. A single-mode turn is recorded once, when it ends.
        let turn = match settings.mode {
            Mode::Single => None,
            Mode::Orchestrator => match store
                .start_turn(
                    &self.key,
                    Some(message_id),
                    settings.mode,
                    &model.model.to_string(),
                )
                .await
            {
                Ok(turn) => Some(turn),
                Err(e) => {
                    tracing::error!(conversation = %self.key, error = %e, "could not start a turn");
                    return self
                        .post(
                            &origin,
                            "Sorry, something went wrong on my side; please try again.",
                        )
                        .await;
                }
            },
        };
        let source = format!("user:{}", inbound.author.id);
        self.log(turn, EventKind::Message, &source, &inbound.text)
            .await;
        let mut context = context::to_context(self.recent.messages(), model.spec.context_window);
        let shelf = self.shelve(&mut context, files);
        let meter = Arc::new(UsageMeter::default());
        let row = TurnRow {
            turn,
            message: message_id,
            mode: settings.mode,
            model: model.model.to_string(),
            started_at: now_ms(),
        };
        let plan = TurnPlan {
            turn,
            settings,
            model,
            meter: meter.clone(),
            shelf,
        };
        // Every line of the turn (its task and workers too) carries these:
        // the conversation, the message it answers (`turns.inbound_message_id`)
        // and the turn id. A single-mode turn's row is written at its end
        // (no store round trip before the model call), so its id joins the
        // span there (`finish`): its lines before that carry the message id.
        let span = tracing::info_span!("turn", conversation = %self.key, turn = turn.map(|t| t.0), message = message_id.0);
        let started = std::time::Instant::now();
        let outcome = self
            .drive(plan, context, &origin)
            .instrument(span.clone())
            .await;
        crate::metrics::turn_ended(row.mode, outcome.label(), started.elapsed());
        self.finish(row, outcome, meter.orchestrator(), &origin, notice)
            .instrument(span)
            .await;
        let spend = Spend::of(&meter.snapshot(), &self.services.config.models);
        self.last_turn = Some(spend);
    }

    /// The orchestrator's model for a message: routing, or the default when
    /// the conversation's `/model` is no longer configured.
    fn orchestrator_model(&self, settings: &ConversationSettings, text: &str) -> ModelHandle {
        let request = RouteRequest {
            conversation: settings.model.as_deref(),
            simple: settings.mode == Mode::Single && routing::is_simple(text),
            ..Default::default()
        };
        let models = &self.services.models;
        match models.route(AgentRole::Orchestrator, request) {
            Ok((model, level)) => {
                tracing::debug!(conversation = %self.key, model = %model.model, ?level, "model chosen");
                model
            }
            Err(e) => {
                tracing::warn!(conversation = %self.key, error = %e, "the conversation's model is not available; using the default");
                models.orchestrator.clone()
            }
        }
    }

    /// Runs the turn task to its end, forwarding worker events and handling
    /// commands (`/stop` cancels) in the meantime.
    async fn drive(
        &mut self,
        plan: TurnPlan,
        context: Vec<Message>,
        origin: &Origin,
    ) -> TurnOutcome {
        let cancel = CancellationToken::new();
        let (events_tx, mut events) = mpsc::channel(EVENT_BUFFER);
        // The turn's notices (a retry of a slow model): at most one a turn.
        let (notices_tx, mut notices) = mpsc::channel::<String>(1);
        // Projects the orchestrator starts (`start_project`) come back here
        // to run; single-mode turns cannot start any.
        let (started_tx, mut started_rx) = match plan.settings.mode {
            Mode::Orchestrator => {
                let room = self.services.config.projects.max_running_per_conversation;
                let (tx, rx) = mpsc::channel(room.max(1));
                (Some(tx), Some(rx))
            }
            Mode::Single => (None, None),
        };
        let mut running = RunningTurn {
            workers: BTreeMap::new(),
            meter: plan.meter.clone(),
        };
        let request = TurnRequest {
            key: self.key.clone(),
            turn: plan.turn,
            settings: plan.settings,
            model: plan.model,
            meter: plan.meter,
            context,
            services: self.services.clone(),
            events: events_tx,
            notices: notices_tx,
            started: started_tx,
            shelf: plan.shelf,
            reply_to: *origin,
            cancel: cancel.clone(),
        };
        let mut task = AbortOnDropHandle::new(tokio::spawn(run_turn(request).in_current_span()));
        let mut typing = tokio::time::interval(TYPING_REFRESH);
        self.in_turn = true;
        let mut stop_deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let outcome = loop {
            tokio::select! {
                biased;
                joined = &mut task => break joined.unwrap_or_else(|e| {
                    tracing::error!(conversation = %self.key, error = %e, "a turn's task failed");
                    TurnOutcome::Crashed
                }),
                () = async { match stop_deadline.as_mut() { Some(deadline) => deadline.await, None => std::future::pending().await } } => {
                    tracing::warn!(conversation = %self.key, "a stopped turn did not end in time; aborting it");
                    break TurnOutcome::Cancelled;
                }
                // The service is stopping: drop the turn (its workers go with
                // it) and leave it `running` in the store, so the next start
                // answers the message again.
                () = self.shutdown.cancelled() => break TurnOutcome::Interrupted,
                Some(control) = next_control(&mut self.deferred, &mut self.control) => match *control {
                    Control::Command(message) if matches!(message.command, Ok(Command::Stop)) => {
                        cancel.cancel();
                        stop_deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(STOP_GRACE)));
                    }
                    control => self.control(control, Some(&running)).await,
                },
                Some(queued) = self.queue.recv(), if self.pending.is_none() => match *queued {
                    // Nothing waits ahead of a settings command: it applies
                    // now. A message or `/reset` waits for the turn to end.
                    Queued::Command(message) => self.command(message, Some(&running)).await,
                    queued => self.pending = Some(Box::new(queued)),
                },
                Some(event) = events.recv() => self.worker_event(event, origin, &mut running).await,
                Some(notice) = notices.recv() => self.post(origin, &notice).await,
                Some(started) = recv_some(&mut started_rx) => self.run_project(started, None),
                event = self.projects.next_event() => self.project_event(event).await,
                _ = typing.tick() => {
                    if let Err(e) = self.reply.working(origin).await {
                        tracing::debug!(conversation = %self.key, error = %e, "typing indicator failed");
                    }
                }
            }
        };
        self.in_turn = false;
        // Show a notice and what the workers said before the reply.
        if let Ok(notice) = notices.try_recv() {
            self.post(origin, &notice).await;
        }
        while let Ok(event) = events.try_recv() {
            self.worker_event(event, origin, &mut running).await;
        }
        while let Some(started) = started_rx.as_mut().and_then(|rx| rx.try_recv().ok()) {
            self.run_project(started, None);
        }
        outcome
    }

    async fn worker_event(
        &mut self,
        event: WorkerEvent,
        origin: &Origin,
        running: &mut RunningTurn,
    ) {
        match &event.kind {
            WorkerEventKind::Started { .. } => {
                running
                    .workers
                    .insert(event.worker_id.clone(), event.label.clone());
            }
            WorkerEventKind::Finished { .. } => {
                running.workers.remove(&event.worker_id);
            }
            WorkerEventKind::Text(_) | WorkerEventKind::ToolCall { .. } => {}
        }
        // Display only: worker events never execute anything.
        if self.settings.verbose
            && let Err(e) = self.reply.verbose(origin, &event).await
        {
            tracing::warn!(conversation = %self.key, error = %e, "could not show worker output");
        }
    }

    /// Posts `text`, waiting until it is sent; a failure is logged. See
    /// [`Actor::deliver`].
    pub(super) async fn post(&mut self, origin: &Origin, text: &str) {
        let _ = self.deliver(origin, text).await;
    }

    /// Posts a reply stored in the outbox, then marks it sent unless the
    /// failure was transient: such a reply is posted again after a restart.
    pub(super) async fn post_stored(&mut self, origin: &Origin, text: &str, outbox: OutboxId) {
        let delivered = self.deliver(origin, text).await;
        if delivered.as_ref().is_err_and(ChannelError::is_transient) {
            return;
        }
        if let Err(e) = self.services.store.mark_sent(outbox).await {
            tracing::warn!(conversation = %self.key, error = %e, "could not mark a reply sent; it may be posted again after a restart");
        }
    }

    /// Posts `text`, waiting until it is sent. A `/stop` meanwhile drops
    /// what is left of it (and of anything else queued for this
    /// conversation) and, outside a turn, is answered once the post ends;
    /// other control messages wait until then. A failure is logged, and
    /// returned.
    async fn deliver(&mut self, origin: &Origin, text: &str) -> Result<(), ChannelError> {
        if !self.services.fence.holds() {
            // Another instance answers in our place.
            tracing::warn!(conversation = %self.key, "not posting: this instance cannot trust its cluster lease");
            self.strand();
            return Err(ChannelError::Transient("the cluster lease was lost".into()));
        }
        if self.answer_elsewhere(origin, text).await {
            return Ok(());
        }
        let cancel = self.reply.pending_cancel();
        let mut stopped: Option<Origin> = None;
        let result = {
            let mut posting = self.reply.post(origin, text);
            loop {
                tokio::select! {
                    biased;
                    result = &mut posting => break result,
                    // At most a control channel's worth is held back.
                    Some(control) = self.control.recv(), if self.deferred.len() < DEFERRED_LIMIT => match *control {
                        Control::Command(message) if matches!(message.command, Ok(Command::Stop)) => {
                            cancel.cancel();
                            if self.in_turn {
                                // The turn's loop cancels the turn too.
                                self.deferred.push_back(Box::new(Control::Command(message)));
                            } else {
                                stopped.get_or_insert(message.origin);
                            }
                        }
                        control => self.deferred.push_back(Box::new(control)),
                    },
                }
            }
        };
        if let Err(e) = &result {
            tracing::warn!(conversation = %self.key, error = %e, "could not deliver a reply");
            let failure = format!("delivery failed: {e}");
            self.log(None, EventKind::Error, "system", &failure).await;
        }
        if let Some(origin) = stopped {
            tracing::debug!(conversation = %self.key, "a reply was stopped while being sent");
            if let Err(e) = self.reply.post(&origin, STOPPED).await {
                tracing::warn!(conversation = %self.key, error = %e, "could not deliver a reply");
            }
        }
        result
    }

    /// Appends to the conversation's event log; a failure is only logged.
    pub(super) async fn log(
        &self,
        turn: Option<TurnId>,
        kind: EventKind,
        source: &str,
        body: &str,
    ) {
        let store = &self.services.store;
        if let Err(e) = store
            .record_event(&self.key, turn, kind, source, body)
            .await
        {
            tracing::warn!(conversation = %self.key, error = %e, "could not record an event");
        }
    }
}

/// The next control message: one deferred while a reply was posted, or
/// else the channel's next.
async fn next_control(
    deferred: &mut VecDeque<Box<Control>>,
    control: &mut mpsc::Receiver<Box<Control>>,
) -> Option<Box<Control>> {
    match deferred.pop_front() {
        Some(next) => Some(next),
        None => control.recv().await,
    }
}

/// The next item of an optional channel (pending when there is none).
async fn recv_some<T>(receiver: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}
