//! The engine-wide cap on model calls in flight, with orchestrator calls
//! served before worker calls, and both before project calls, when every
//! slot is taken.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

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

/// Limits concurrent model calls across all conversations.
///
/// Like a semaphore, but with three queues: when a slot frees up it goes to
/// the longest-waiting orchestrator call first, then to workers, then to
/// projects.
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
    free: usize,
    orchestrators: VecDeque<oneshot::Sender<CallPermit>>,
    workers: VecDeque<oneshot::Sender<CallPermit>>,
    projects: VecDeque<oneshot::Sender<CallPermit>>,
}

impl State {
    fn next_waiter(&mut self) -> Option<oneshot::Sender<CallPermit>> {
        self.orchestrators
            .pop_front()
            .or_else(|| self.workers.pop_front())
            .or_else(|| self.projects.pop_front())
    }
}

/// One model call's slot; dropping it hands the slot on.
#[derive(Debug)]
pub struct CallPermit {
    inner: Option<Arc<Inner>>,
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            release(&inner);
        }
    }
}

fn lock(inner: &Inner) -> MutexGuard<'_, State> {
    inner.state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Gives a freed slot to the next waiter, or back to the pool.
fn release(inner: &Arc<Inner>) {
    let mut state = lock(inner);
    let mut permit = CallPermit {
        inner: Some(inner.clone()),
    };
    while let Some(waiter) = state.next_waiter() {
        match waiter.send(permit) {
            Ok(()) => return,
            // That waiter gave up (its call was cancelled): try the next.
            Err(back) => permit = back,
        }
    }
    // Nobody waits: defuse the permit so its drop does not release again.
    permit.inner = None;
    state.free += 1;
}

impl ModelCallLimiter {
    /// A limiter with `slots` concurrent calls (at least one).
    pub fn new(slots: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    free: slots.max(1),
                    orchestrators: VecDeque::new(),
                    workers: VecDeque::new(),
                    projects: VecDeque::new(),
                }),
            }),
        }
    }

    /// Waits for a slot. Cancel-safe: a dropped wait loses no slot.
    pub async fn acquire(&self, priority: Priority) -> CallPermit {
        let waiting = {
            let mut state = lock(&self.inner);
            if state.free > 0 {
                state.free -= 1;
                return CallPermit {
                    inner: Some(self.inner.clone()),
                };
            }
            let (tx, rx) = oneshot::channel();
            match priority {
                Priority::Orchestrator => state.orchestrators.push_back(tx),
                Priority::Worker => state.workers.push_back(tx),
                Priority::Project => state.projects.push_back(tx),
            }
            rx
        };
        match waiting.await {
            Ok(permit) => permit,
            // The limiter only drops a waiter's sender after sending to it.
            Err(_) => CallPermit { inner: None },
        }
    }

    /// Slots free right now (for `/status` and tests).
    pub fn available(&self) -> usize {
        lock(&self.inner).free
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn orchestrator_calls_go_first_and_projects_last_when_saturated() {
        let limiter = ModelCallLimiter::new(1);
        let held = limiter.acquire(Priority::Worker).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, priority) in [
            ("project", Priority::Project),
            ("worker", Priority::Worker),
            ("orchestrator", Priority::Orchestrator),
        ] {
            let limiter = limiter.clone();
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = limiter.acquire(priority).await;
                order.lock().unwrap().push(name);
            }));
            tokio::task::yield_now().await;
        }
        drop(held);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            vec!["orchestrator", "worker", "project"]
        );
        assert_eq!(limiter.available(), 1);
    }

    #[tokio::test]
    async fn a_cancelled_wait_loses_no_slot() {
        let limiter = ModelCallLimiter::new(1);
        let held = limiter.acquire(Priority::Orchestrator).await;
        let gave_up =
            tokio::time::timeout(Duration::from_millis(10), limiter.acquire(Priority::Worker))
                .await;
        assert!(gave_up.is_err());
        drop(held);
        assert_eq!(limiter.available(), 1);
        let _again = limiter.acquire(Priority::Worker).await;
        assert_eq!(limiter.available(), 0);
    }
}
