//! The service-wide count of running projects (`[projects] max_running`):
//! a slot is taken when a boss starts and given back when its task ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many projects run across the service, and how many may.
#[derive(Debug)]
pub struct ProjectSlots {
    running: Arc<AtomicUsize>,
    max: usize,
}

/// One running project's place; dropping it frees the place.
#[derive(Debug)]
pub struct ProjectSlot(Arc<AtomicUsize>);

impl Drop for ProjectSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ProjectSlots {
    /// Room for `max` projects at once.
    pub fn new(max: usize) -> Self {
        Self {
            running: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// A place for one more project, unless `max` are running.
    pub fn take(&self) -> Option<ProjectSlot> {
        self.running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |running| {
                (running < self.max).then_some(running + 1)
            })
            .ok()
            .map(|_| ProjectSlot(self.running.clone()))
    }

    /// Projects running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_and_come_back() {
        let slots = ProjectSlots::new(2);
        let one = slots.take();
        let two = slots.take();
        assert!(one.is_some() && two.is_some());
        assert!(slots.take().is_none());
        drop(one);
        assert_eq!(slots.running(), 1);
        assert!(slots.take().is_some());
    }
}
