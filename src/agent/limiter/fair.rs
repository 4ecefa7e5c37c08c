//! Who gets the next free slot: the waiting calls grouped by conversation,
//! and the choice among them.
//!
//! The choice, in order: the highest [`Priority`] class that has a call
//! whose provider can take it; within the class, the conversation with the
//! fewest calls in flight; then the conversation served longest ago (one
//! never served, or with nothing left in flight or waiting, first); then
//! the call that has waited longest. So one conversation's eight workers
//! share the slots with another conversation's one worker rather than
//! queueing ahead of it, and conversations with equal shares take turns.

use std::collections::{HashMap, VecDeque};

use baton_channel::ConversationKey;
use tokio::sync::oneshot;

use super::{CallPermit, Priority};

/// One call waiting for a slot.
#[derive(Debug)]
pub(super) struct Waiter {
    /// Arrival order, unique (also how a cancelled wait finds itself).
    pub seq: u64,
    /// The provider it calls (an index into the limiter's providers).
    pub provider: usize,
    /// Where its permit goes.
    pub tx: oneshot::Sender<CallPermit>,
}

/// One conversation's share: calls in flight, when it was last served,
/// and its waiting calls per priority class.
#[derive(Debug, Default)]
struct Share {
    in_flight: usize,
    last_served: u64,
    waiting: [VecDeque<Waiter>; 3],
}

impl Share {
    fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.waiting.iter().all(VecDeque::is_empty)
    }
}

/// Every conversation that has calls in flight or waiting.
#[derive(Debug, Default)]
pub(super) struct Shares {
    shares: HashMap<ConversationKey, Share>,
    /// Calls waiting, in all.
    waiting: usize,
    /// Grants so far (the clock of `last_served`).
    served: u64,
}

/// A class's index: orchestrator calls first, project calls last.
pub(super) fn class(priority: Priority) -> usize {
    match priority {
        Priority::Orchestrator => 0,
        Priority::Worker => 1,
        Priority::Project => 2,
    }
}

impl Shares {
    /// Calls waiting, in all.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Calls waiting for each provider (indexed like the limiter's).
    pub fn waiting_per_provider(&self, providers: usize) -> Vec<usize> {
        let mut counts = vec![0; providers];
        let waiters = self
            .shares
            .values()
            .flat_map(|share| share.waiting.iter().flatten());
        for waiter in waiters {
            if let Some(count) = counts.get_mut(waiter.provider) {
                *count += 1;
            }
        }
        counts
    }

    /// Puts a call in its conversation's queue for its class.
    pub fn enqueue(&mut self, key: &ConversationKey, class: usize, waiter: Waiter) {
        let share = self.shares.entry(key.clone()).or_default();
        if let Some(queue) = share.waiting.get_mut(class) {
            queue.push_back(waiter);
            self.waiting += 1;
        }
    }

    /// Takes a cancelled call out of its queue, if it is still there.
    pub fn remove(&mut self, key: &ConversationKey, class: usize, seq: u64) {
        let Some(share) = self.shares.get_mut(key) else {
            return;
        };
        if let Some(queue) = share.waiting.get_mut(class)
            && let Some(at) = queue.iter().position(|waiter| waiter.seq == seq)
        {
            queue.remove(at);
            self.waiting -= 1;
        }
        if share.is_idle() {
            self.shares.remove(key);
        }
    }

    /// Takes the next call to serve among those `admits` lets through (by
    /// provider), per the module's rules.
    pub fn pick(&mut self, admits: impl Fn(usize) -> bool) -> Option<(ConversationKey, Waiter)> {
        if self.waiting == 0 {
            return None;
        }
        for class in 0..3 {
            let mut best: Option<((usize, u64, u64), &ConversationKey, usize)> = None;
            for (key, share) in &self.shares {
                let Some(queue) = share.waiting.get(class) else {
                    continue;
                };
                let Some(at) = queue.iter().position(|waiter| admits(waiter.provider)) else {
                    continue;
                };
                let rank = (share.in_flight, share.last_served, queue[at].seq);
                if best.as_ref().is_none_or(|(known, ..)| rank < *known) {
                    best = Some((rank, key, at));
                }
            }
            if let Some((_, key, at)) = best {
                let key = key.clone();
                let share = self.shares.get_mut(&key)?;
                let waiter = share.waiting.get_mut(class)?.remove(at)?;
                self.waiting -= 1;
                return Some((key, waiter));
            }
        }
        None
    }

    /// Counts a call of `key` as started.
    pub fn started(&mut self, key: &ConversationKey) {
        self.served += 1;
        let served = self.served;
        let share = self.shares.entry(key.clone()).or_default();
        share.in_flight += 1;
        share.last_served = served;
    }

    /// Counts a call of `key` as ended.
    pub fn ended(&mut self, key: &ConversationKey) {
        if let Some(share) = self.shares.get_mut(key) {
            share.in_flight = share.in_flight.saturating_sub(1);
            if share.is_idle() {
                self.shares.remove(key);
            }
        }
    }
}
