//! Per-channel order for gateway messages.
//!
//! serenity runs every event handler in a task of its own, so two messages
//! sent to one channel in quick succession could reach the engine (and its
//! store, which fixes their order) in either order, or at once. A
//! [`Sequencer`] hands one channel's messages to the engine one at a time,
//! lowest message id first (Discord ids grow with time): whoever finds the
//! channel idle drains it, and messages that arrive meanwhile wait in id
//! order. Different channels do not wait for each other.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;

/// Messages waiting per channel, in id order.
pub struct Sequencer<T> {
    /// Never held across an `.await`.
    lanes: Mutex<HashMap<u64, Lane<T>>>,
}

struct Lane<T> {
    waiting: BTreeMap<u64, T>,
    /// A task is handing this channel's messages on.
    draining: bool,
}

impl<T> Default for Sequencer<T> {
    fn default() -> Self {
        Self {
            lanes: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Sequencer<T> {
    fn lanes(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Lane<T>>> {
        self.lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `item` (message `id` of `channel`) and, unless another task
    /// is already draining the channel, hands its waiting items to
    /// `deliver` one at a time, lowest id first, until none is left.
    pub async fn submit<F, Fut>(&self, channel: u64, id: u64, item: T, deliver: F)
    where
        F: Fn(T) -> Fut,
        Fut: Future<Output = ()>,
    {
        {
            let mut lanes = self.lanes();
            let lane = lanes.entry(channel).or_insert_with(|| Lane {
                waiting: BTreeMap::new(),
                draining: false,
            });
            lane.waiting.insert(id, item);
            if lane.draining {
                return;
            }
            lane.draining = true;
        }
        // If this task is dropped mid-way, the next message drains.
        let _draining = Draining {
            sequencer: self,
            channel,
        };
        loop {
            let next = {
                let mut lanes = self.lanes();
                lanes
                    .get_mut(&channel)
                    .and_then(|lane| lane.waiting.pop_first())
            };
            match next {
                Some((_, item)) => deliver(item).await,
                None => return,
            }
        }
    }
}

/// Marks a channel idle again when its drainer stops, forgetting it when
/// nothing waits.
struct Draining<'a, T> {
    sequencer: &'a Sequencer<T>,
    channel: u64,
}

impl<T> Drop for Draining<'_, T> {
    fn drop(&mut self) {
        let mut lanes = self.sequencer.lanes();
        if let Some(lane) = lanes.get_mut(&self.channel) {
            lane.draining = false;
            if lane.waiting.is_empty() {
                lanes.remove(&self.channel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::{Notify, mpsc};

    use super::*;

    #[tokio::test]
    async fn messages_that_arrive_while_a_channel_is_busy_go_on_in_id_order() {
        let sequencer = Arc::new(Sequencer::default());
        let (delivered, mut seen) = mpsc::channel(8);
        let release = Arc::new(Notify::new());
        let deliver = {
            let release = release.clone();
            move |id: u64| {
                let delivered = delivered.clone();
                let release = release.clone();
                async move {
                    if id == 5 {
                        release.notified().await;
                    }
                    delivered.send(id).await.unwrap();
                }
            }
        };
        let first = tokio::spawn({
            let sequencer = sequencer.clone();
            let deliver = deliver.clone();
            async move { sequencer.submit(1, 5, 5, deliver).await }
        });
        tokio::task::yield_now().await;
        // Channel 1 is busy with 5: these wait, and return at once.
        sequencer.submit(1, 9, 9, deliver.clone()).await;
        sequencer.submit(1, 7, 7, deliver.clone()).await;
        // Another channel does not wait.
        sequencer.submit(2, 3, 3, deliver.clone()).await;
        assert_eq!(seen.recv().await, Some(3));
        release.notify_one();
        first.await.unwrap();
        let order = [seen.recv().await, seen.recv().await, seen.recv().await];
        assert_eq!(order, [Some(5), Some(7), Some(9)]);
        assert!(sequencer.lanes().is_empty(), "idle channels are forgotten");
    }
}
