//! Injected failures: "the next N requests to this route answer that".

use std::collections::VecDeque;

/// Queued failures, each for requests matching a target; taken in the order they were queued.
#[derive(Debug, Clone)]
pub struct FaultQueue<Target, Fault> {
    queued: VecDeque<(Target, Fault)>,
}

impl<Target, Fault> Default for FaultQueue<Target, Fault> {
    fn default() -> Self {
        FaultQueue {
            queued: VecDeque::new(),
        }
    }
}

impl<Target, Fault: Clone> FaultQueue<Target, Fault> {
    /// The next `count` requests that `target` matches get `fault`.
    pub fn push(&mut self, target: Target, count: u32, fault: Fault)
    where
        Target: Clone,
    {
        for _ in 0..count {
            self.queued.push_back((target.clone(), fault.clone()));
        }
    }

    /// Replaces every queued failure with `count` times `fault` for `target`.
    pub fn replace(&mut self, target: Target, count: u32, fault: Fault)
    where
        Target: Clone,
    {
        self.queued.clear();
        self.push(target, count, fault);
    }

    /// The oldest queued failure whose target `hits` accepts, removed from the queue.
    pub fn take(&mut self, hits: impl Fn(&Target) -> bool) -> Option<Fault> {
        let pos = self.queued.iter().position(|(t, _)| hits(t))?;
        self.queued.remove(pos).map(|(_, f)| f)
    }

    pub fn clear(&mut self) {
        self.queued.clear();
    }

    /// How many failures are still queued.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_oldest_matching_fault_count_times() {
        let mut q = FaultQueue::default();
        q.push("write", 2, 429);
        q.push("read", 1, 500);
        assert_eq!(q.take(|t| *t == "read"), Some(500));
        assert_eq!(q.take(|t| *t == "read"), None);
        assert_eq!(q.take(|_| true), Some(429));
        assert_eq!(q.len(), 1);
        q.replace("any", 3, 503);
        assert_eq!(q.len(), 3);
        assert_eq!(q.take(|t| *t == "any"), Some(503));
        q.clear();
        assert!(q.is_empty());
    }
}
