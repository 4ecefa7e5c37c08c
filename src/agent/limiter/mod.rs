//! How many model calls run at once: per provider, a limit that adapts to
//! what the provider says (`adaptive.rs`), under the engine-wide ceiling
//! `[engine] max_concurrent_model_calls`; and who goes next when slots
//! are short (`fair.rs`): orchestrator calls before worker calls before
//! project calls, and within a class the conversation with the fewest
//! calls running.
//!
//! A call takes a [`CallPermit`] with [`ModelCallLimiter::acquire`] and
//! hands it back with [`CallPermit::finish`] and the call's result: a
//! success may grow its provider's limit; a 429, a 529 or "overloaded"
//! answer, or a connect timeout halves it (with a log line saying why);
//! `Retry-After` and used-up quota headers pause the provider. A permit
//! dropped without `finish` (a cancelled call) frees its slot and says
//! nothing about the provider.
//!
//! The state sits behind one std mutex, never held across an `.await`.
//! After every change that can free a slot (a call ends, a limit grows, a
//! pause ends) the waiting calls that now fit are started, so a new call
//! finds no one ahead of it that could run.

mod adaptive;
mod fair;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use baton_channel::ConversationKey;
use tokio::sync::oneshot;
use tokio::time::Instant;

pub use adaptive::MAX_PAUSE;
use adaptive::{AdaptiveLimit, Change, Signal};
use fair::{Shares, Waiter, class};

use crate::config::Config;
use crate::llm::{Completion, ProviderError};

/// Whose model call is waiting for a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// An orchestrator's call: a user is waiting on it directly.
    Orchestrator,
    /// A worker's call.
    Worker,
    /// A background project's call (its boss or its workers): nobody is
    /// waiting on it in the chat, so chat turns go first.
    Project,
}

impl Priority {
    /// The role the metrics label its calls with.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Orchestrator => "orchestrator",
            Priority::Worker => "worker",
            Priority::Project => "project",
        }
    }
}

/// Who is asking for a slot.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The provider the call goes to (its `[providers.NAME]`).
    pub provider: &'a str,
    /// Its place in the queue.
    pub priority: Priority,
    /// The conversation it works for (fairness is per conversation).
    pub conversation: &'a ConversationKey,
}

/// Limits concurrent model calls per provider and across all of them.
/// Clones share the limiter.
#[derive(Debug, Clone)]
pub struct ModelCallLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// A std mutex: it is never held across an `.await`.
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// `[engine] max_concurrent_model_calls`.
    ceiling: usize,
    /// Calls in flight across providers.
    in_flight: usize,
    providers: Vec<ProviderSlots>,
    by_name: HashMap<String, usize>,
    shares: Shares,
    /// Arrival numbers of waiting calls.
    next_seq: u64,
}

/// One provider's limit and load.
#[derive(Debug)]
struct ProviderSlots {
    name: String,
    limit: AdaptiveLimit,
    in_flight: usize,
    /// Whether a timer will start waiting calls when its pause ends.
    wake_set: bool,
}

/// One provider's load, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderLoad {
    /// The provider's name.
    pub provider: String,
    /// Its current limit on calls in flight.
    pub limit: usize,
    /// The most its limit may grow to (`max_concurrency`).
    pub max_concurrency: usize,
    /// Its calls in flight.
    pub in_flight: usize,
    /// Calls waiting for it.
    pub waiting: usize,
    /// How much longer new calls wait, and why (`Retry-After`, quota).
    pub paused: Option<(Duration, &'static str)>,
}

/// The limiter's load, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterLoad {
    /// `[engine] max_concurrent_model_calls`.
    pub ceiling: usize,
    /// Calls in flight across providers.
    pub in_flight: usize,
    /// Each provider, in name order.
    pub providers: Vec<ProviderLoad>,
}

/// One model call's slot. Hand it back with [`CallPermit::finish`];
/// dropping it frees the slot without a word about the provider.
#[derive(Debug)]
pub struct CallPermit {
    inner: Option<Arc<Inner>>,
    provider: usize,
    conversation: ConversationKey,
    /// The provider's limit epoch when the call started.
    epoch: u64,
}

impl CallPermit {
    /// Frees the slot, telling the provider's limit how the call went.
    pub fn finish(mut self, result: &Result<Completion, ProviderError>) {
        if let Some(inner) = self.inner.take() {
            release(&inner, &self, Some(Signal::of(result)));
        }
    }
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            release(&inner, self, None);
        }
    }
}

fn lock(inner: &Inner) -> MutexGuard<'_, State> {
    inner.state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ends a call: records what it said, frees its slot, starts who fits.
fn release(inner: &Arc<Inner>, permit: &CallPermit, signal: Option<Signal>) {
    let mut state = lock(inner);
    let now = Instant::now();
    let Some(slots) = state.providers.get_mut(permit.provider) else {
        return;
    };
    let change = signal.map(|signal| {
        let change = slots
            .limit
            .record(&signal, permit.epoch, slots.in_flight, now);
        (signal, change)
    });
    let (name, limit, in_flight) = (slots.name.clone(), slots.limit.current(), slots.in_flight);
    slots.in_flight = slots.in_flight.saturating_sub(1);
    let paused = change.is_some_and(|(_, change)| change.paused.is_some());
    if paused && let Some(until) = slots.limit.paused_until(now) {
        schedule_wake(inner, permit.provider, slots, until);
    }
    state.in_flight = state.in_flight.saturating_sub(1);
    state.shares.ended(&permit.conversation);
    state.dispatch(inner, now);
    drop(state);
    if let Some((signal, change)) = change {
        log_change(&name, &signal, change, limit, in_flight);
    }
}

/// Says what changed: a halving (warn, with why), a pause (info);
/// `in_flight` counts the provider's calls when the call ended, its own
/// included.
fn log_change(provider: &str, signal: &Signal, change: Change, limit: usize, in_flight: usize) {
    let reason = match signal {
        Signal::Overloaded { reason, .. } => *reason,
        Signal::Answered(_) | Signal::Neutral => "",
    };
    if let Some((from, to)) = change.halved {
        tracing::warn!(
            provider,
            from,
            to,
            in_flight,
            reason,
            "model calls: the provider's concurrency limit was halved"
        );
    }
    if let Some((wait, why)) = change.paused {
        tracing::info!(
            provider,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            why,
            limit,
            "model calls: new calls to the provider wait"
        );
    }
}

/// Makes sure the calls waiting for `provider` are looked at again when
/// its pause ends: one timer per provider, which sleeps again if the pause
/// was made longer meanwhile.
fn schedule_wake(inner: &Arc<Inner>, provider: usize, slots: &mut ProviderSlots, until: Instant) {
    if slots.wake_set {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    slots.wake_set = true;
    let weak: Weak<Inner> = Arc::downgrade(inner);
    runtime.spawn(async move {
        let mut until = until;
        loop {
            tokio::time::sleep_until(until).await;
            let Some(inner) = weak.upgrade() else {
                return;
            };
            let mut state = lock(&inner);
            let now = Instant::now();
            let Some(slots) = state.providers.get_mut(provider) else {
                return;
            };
            match slots.limit.paused_until(now) {
                Some(later) => until = later,
                None => {
                    slots.wake_set = false;
                    state.dispatch(&inner, now);
                    return;
                }
            }
        }
    });
}

impl State {
    fn provider(&mut self, name: &str) -> usize {
        if let Some(index) = self.by_name.get(name) {
            return *index;
        }
        // A provider the config did not list (a test's, a benchmark's)
        // has only the engine-wide ceiling.
        self.add_provider(name, self.ceiling)
    }

    fn add_provider(&mut self, name: &str, max_concurrency: usize) -> usize {
        let index = self.providers.len();
        self.providers.push(ProviderSlots {
            name: name.to_owned(),
            limit: AdaptiveLimit::new(max_concurrency),
            in_flight: 0,
            wake_set: false,
        });
        self.by_name.insert(name.to_owned(), index);
        index
    }

    fn admits(&self, provider: usize, now: Instant) -> bool {
        self.in_flight < self.ceiling
            && self
                .providers
                .get(provider)
                .is_some_and(|slots| slots.limit.admits(slots.in_flight, now))
    }

    /// Counts a call as started and makes its permit.
    fn start(
        &mut self,
        inner: &Arc<Inner>,
        provider: usize,
        conversation: ConversationKey,
    ) -> CallPermit {
        let epoch = match self.providers.get_mut(provider) {
            Some(slots) => {
                slots.in_flight += 1;
                slots.limit.epoch()
            }
            None => 0,
        };
        self.in_flight += 1;
        self.shares.started(&conversation);
        CallPermit {
            inner: Some(inner.clone()),
            provider,
            conversation,
            epoch,
        }
    }

    /// Takes back a start whose caller was gone (no lock is taken: the
    /// caller holds it).
    fn unstart(&mut self, mut permit: CallPermit) {
        permit.inner = None;
        if let Some(slots) = self.providers.get_mut(permit.provider) {
            slots.in_flight = slots.in_flight.saturating_sub(1);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.shares.ended(&permit.conversation);
    }

    /// Starts every waiting call that fits now, best first.
    fn dispatch(&mut self, inner: &Arc<Inner>, now: Instant) {
        while self.in_flight < self.ceiling && self.shares.waiting() > 0 {
            let providers = &self.providers;
            let room = |slots: &ProviderSlots| slots.limit.admits(slots.in_flight, now);
            if !providers.iter().any(room) {
                // Every provider is full or paused: nobody can start.
                return;
            }
            let picked = self.shares.pick(|provider| {
                providers
                    .get(provider)
                    .is_some_and(|slots| slots.limit.admits(slots.in_flight, now))
            });
            let Some((conversation, waiter)) = picked else {
                return;
            };
            let permit = self.start(inner, waiter.provider, conversation);
            if let Err(permit) = waiter.tx.send(permit) {
                // Its wait was dropped a moment ago.
                self.unstart(permit);
            }
        }
    }
}

/// Takes a waiting call out of the queue if its wait is dropped.
struct Waiting<'a> {
    inner: &'a Arc<Inner>,
    conversation: &'a ConversationKey,
    class: usize,
    seq: u64,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.done {
            lock(self.inner)
                .shares
                .remove(self.conversation, self.class, self.seq);
        }
    }
}

impl ModelCallLimiter {
    /// A limiter with `ceiling` calls in flight in all (at least one);
    /// every provider's own ceiling is this too until
    /// [`ModelCallLimiter::with_provider`] says otherwise.
    pub fn new(ceiling: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    ceiling: ceiling.max(1),
                    in_flight: 0,
                    providers: Vec::new(),
                    by_name: HashMap::new(),
                    shares: Shares::default(),
                    next_seq: 0,
                }),
            }),
        }
    }

    /// The limiter a config asks for: `[engine] max_concurrent_model_calls`
    /// in all, and each provider's `max_concurrency`.
    pub fn from_config(config: &Config) -> Self {
        config.providers.iter().fold(
            Self::new(config.engine.max_concurrent_model_calls),
            |limiter, (name, provider)| limiter.with_provider(name, provider.max_concurrency()),
        )
    }

    /// Sets `provider`'s ceiling (its limit starts there).
    pub fn with_provider(self, provider: &str, max_concurrency: usize) -> Self {
        {
            let mut state = lock(&self.inner);
            match state.by_name.get(provider) {
                Some(&index) => {
                    if let Some(slots) = state.providers.get_mut(index) {
                        slots.limit = AdaptiveLimit::new(max_concurrency);
                    }
                }
                None => {
                    state.add_provider(provider, max_concurrency);
                }
            }
        }
        self
    }

    /// Waits for a slot. Cancel-safe: a dropped wait loses no slot.
    pub async fn acquire(&self, caller: Caller<'_>) -> CallPermit {
        let class = class(caller.priority);
        let (waiting, rx) = {
            let mut state = lock(&self.inner);
            let now = Instant::now();
            state.dispatch(&self.inner, now);
            let provider = state.provider(caller.provider);
            if state.admits(provider, now) {
                return state.start(&self.inner, provider, caller.conversation.clone());
            }
            state.next_seq += 1;
            let seq = state.next_seq;
            let (tx, rx) = oneshot::channel();
            let waiter = Waiter { seq, provider, tx };
            state.shares.enqueue(caller.conversation, class, waiter);
            let waiting = Waiting {
                inner: &self.inner,
                conversation: caller.conversation,
                class,
                seq,
                done: false,
            };
            (waiting, rx)
        };
        let mut waiting = waiting;
        let permit = rx.await;
        waiting.done = true;
        match permit {
            Ok(permit) => permit,
            // The limiter only drops a waiter's sender after sending to it.
            Err(_) => CallPermit {
                inner: None,
                provider: 0,
                conversation: caller.conversation.clone(),
                epoch: 0,
            },
        }
    }

    /// Slots free right now across providers (tests).
    pub fn available(&self) -> usize {
        let state = lock(&self.inner);
        state.ceiling.saturating_sub(state.in_flight)
    }

    /// Each provider's limit, calls in flight and waiting (`/status`).
    pub fn load(&self) -> LimiterLoad {
        let state = lock(&self.inner);
        let now = Instant::now();
        let waiting = state.shares.waiting_per_provider(state.providers.len());
        let mut providers: Vec<ProviderLoad> = state
            .providers
            .iter()
            .zip(waiting)
            .map(|(slots, waiting)| ProviderLoad {
                provider: slots.name.clone(),
                limit: slots.limit.current(),
                max_concurrency: slots.limit.ceiling(),
                in_flight: slots.in_flight,
                waiting,
                paused: slots.limit.paused_for(now),
            })
            .collect();
        providers.sort_by(|a, b| a.provider.cmp(&b.provider));
        LimiterLoad {
            ceiling: state.ceiling,
            in_flight: state.in_flight,
            providers,
        }
    }
}
