//! The scale-set model shared by the simulated Azure scale set, the simulated Auto Scaling group
//! and the virtual drills: a capacity, one instance per unit of capacity, each booting until its
//! ready time, Spot evictions that delete an instance and lower the capacity, and the running
//! count billing and probes see.
//!
//! Time is a type parameter: the HTTP simulators run on `std::time::Instant`, the virtual drills
//! on the decision core's `Timestamp`. The model never reads a clock; callers pass the instants.

use std::collections::BTreeMap;

/// One instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instance<T> {
    pub created: T,
    /// When it reaches running (or, if its allocation fails, when that failure shows).
    pub ready_at: T,
    /// No Spot capacity was found for it: it never runs.
    pub allocation_fails: bool,
}

/// Where an instance is at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceState {
    Booting,
    Running,
    Failed,
}

/// Instances per state at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub running: u32,
    pub booting: u32,
    pub failed: u32,
}

/// What a capacity write changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resized {
    pub from: u32,
    pub to: u32,
}

/// A scale set: instances keyed by instance id (ids only grow, as in Azure), capacity = the
/// number of instances.
#[derive(Clone, Debug)]
pub struct ScaleSet<T> {
    instances: BTreeMap<u32, Instance<T>>,
    next_id: u32,
    evicted: u32,
}

impl<T> Default for ScaleSet<T> {
    fn default() -> Self {
        ScaleSet {
            instances: BTreeMap::new(),
            next_id: 0,
            evicted: 0,
        }
    }
}

impl<T: Copy + Ord> ScaleSet<T> {
    pub fn capacity(&self) -> u32 {
        u32::try_from(self.instances.len()).unwrap_or(u32::MAX)
    }

    /// Adds or removes instances so there are `n`. New ones are created at `created` and ready
    /// at `ready_at` (failing their allocation then if `allocation_fails`); scale-in removes the
    /// newest instances first (the highest ids), as Azure's default policy does.
    pub fn resize(&mut self, n: u32, created: T, ready_at: T, allocation_fails: bool) -> Resized {
        let from = self.capacity();
        while self.instances.len() > n as usize {
            self.instances.pop_last();
        }
        while self.instances.len() < n as usize {
            let id = self.next_id;
            self.next_id += 1;
            self.instances.insert(
                id,
                Instance {
                    created,
                    ready_at,
                    allocation_fails,
                },
            );
        }
        Resized { from, to: n }
    }

    pub fn state(instance: &Instance<T>, now: T) -> InstanceState {
        match (now >= instance.ready_at, instance.allocation_fails) {
            (false, _) => InstanceState::Booting,
            (true, false) => InstanceState::Running,
            (true, true) => InstanceState::Failed,
        }
    }

    pub fn counts(&self, now: T) -> Counts {
        let mut counts = Counts::default();
        for i in self.instances.values() {
            match Self::state(i, now) {
                InstanceState::Running => counts.running += 1,
                InstanceState::Booting => counts.booting += 1,
                InstanceState::Failed => counts.failed += 1,
            }
        }
        counts
    }

    pub fn running(&self, now: T) -> u32 {
        self.counts(now).running
    }

    /// Instances by id, lowest (oldest) first.
    pub fn instances(&self) -> impl DoubleEndedIterator<Item = (u32, &Instance<T>)> {
        self.instances.iter().map(|(id, i)| (*id, i))
    }

    pub fn instance(&self, id: u32) -> Option<&Instance<T>> {
        self.instances.get(&id)
    }

    /// A Spot eviction with the Delete policy: the instance is deleted and the scale set asks
    /// for one fewer. `false` if there is no such instance.
    pub fn evict(&mut self, id: u32) -> bool {
        if self.instances.remove(&id).is_none() {
            return false;
        }
        self.evicted += 1;
        true
    }

    /// Evicts up to `n` of the newest instances; with `running_at`, only those running then (a
    /// booting instance has nothing to evict yet). Returns the evicted ids, newest first.
    pub fn evict_newest(&mut self, n: u32, running_at: Option<T>) -> Vec<u32> {
        let ids: Vec<u32> = self
            .instances
            .iter()
            .rev()
            .filter(|(_, i)| {
                running_at.is_none_or(|now| Self::state(i, now) == InstanceState::Running)
            })
            .take(n as usize)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.evict(*id);
        }
        ids
    }

    /// Instances evicted so far.
    pub fn evicted(&self) -> u32 {
        self.evicted
    }

    /// The instants strictly between `from` and `to` at which an instance becomes running, in
    /// order (so that what runs can be integrated exactly over time).
    pub fn ready_between(&self, from: T, to: T) -> Vec<T> {
        let mut ready: Vec<T> = self
            .instances
            .values()
            .filter(|i| !i.allocation_fails && i.ready_at > from && i.ready_at < to)
            .map(|i| i.ready_at)
            .collect();
        ready.sort();
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_boot_then_run_and_scale_in_removes_the_newest() {
        let mut set = ScaleSet::<u64>::default();
        assert_eq!(set.resize(2, 0, 10, false), Resized { from: 0, to: 2 });
        assert_eq!(set.resize(4, 5, 20, false), Resized { from: 2, to: 4 });
        assert_eq!(
            set.counts(12),
            Counts {
                running: 2,
                booting: 2,
                failed: 0
            }
        );
        assert_eq!(set.ready_between(0, 30), [10, 10, 20, 20]);
        set.resize(3, 30, 30, false);
        assert_eq!(
            set.instances().map(|(id, _)| id).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(set.running(30), 3);
    }

    #[test]
    fn failed_allocations_never_run() {
        let mut set = ScaleSet::<u64>::default();
        set.resize(2, 0, 10, true);
        assert_eq!(set.counts(5).booting, 2);
        assert_eq!(set.counts(10).failed, 2);
        assert_eq!(set.running(100), 0);
        assert!(set.ready_between(0, 100).is_empty());
        assert_eq!(set.capacity(), 2);
    }

    #[test]
    fn evictions_delete_and_lower_the_capacity() {
        let mut set = ScaleSet::<u64>::default();
        set.resize(2, 0, 10, false);
        set.resize(3, 50, 100, false);
        // Only running instances can be evicted when asked so: the booting one (id 2) stays.
        assert_eq!(set.evict_newest(5, Some(60)), [1, 0]);
        assert_eq!((set.capacity(), set.evicted()), (1, 2));
        assert!(!set.evict(7));
        assert_eq!(set.evict_newest(1, None), [2]);
        assert_eq!((set.capacity(), set.evicted()), (0, 3));
        // Ids are never reused.
        set.resize(1, 200, 200, false);
        assert_eq!(set.instances().map(|(id, _)| id).collect::<Vec<_>>(), [3]);
    }
}
