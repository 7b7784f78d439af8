//! The children of one supervisor, in start order, indexed by key and id.
//!
//! Keys grow with every child added, so ordering by key is start order. A
//! `BTreeMap` by key plus a map from id to key keep starts, exits, lookups
//! and removals logarithmic, so a pool of thousands of dynamic children (one
//! per connection, say) stays cheap. Only reports are linear: a failure
//! counts the child's position for its `ChildInfo`, and `which_children`
//! lists them all.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::child::ChildCell;
use super::spec::{ChildInfo, ChildState, ErasedSpec};

/// One child as its supervisor tracks it.
pub(super) struct Slot {
    pub(super) spec: Arc<dyn ErasedSpec>,
    pub(super) dynamic: bool,
    /// Bumped at every start; stale exit reports carry an older one.
    pub(super) generation: u64,
    pub(super) running: Option<Rc<ChildCell>>,
    pub(super) started_at: Option<Instant>,
    pub(super) restarts: u64,
    pub(super) consecutive: u32,
    /// The restart group (a timer) this child waits for.
    pub(super) pending: Option<u64>,
}

impl Slot {
    pub(super) fn new(spec: Arc<dyn ErasedSpec>, dynamic: bool) -> Self {
        Self {
            spec,
            dynamic,
            generation: 0,
            running: None,
            started_at: None,
            restarts: 0,
            consecutive: 0,
            pending: None,
        }
    }

    pub(super) fn info(&self, index: usize) -> ChildInfo {
        ChildInfo {
            id: self.spec.id().to_string(),
            index,
            kind: self.spec.kind(),
            restart: self.spec.restart(),
            state: if self.running.is_some() {
                ChildState::Running
            } else if self.pending.is_some() {
                ChildState::Restarting
            } else {
                ChildState::Stopped
            },
            restarts: self.restarts,
            consecutive_failures: self.consecutive,
            started_at: self.started_at.filter(|_| self.running.is_some()),
            dynamic: self.dynamic,
        }
    }
}

/// The children in start order.
#[derive(Default)]
pub(super) struct Children {
    slots: BTreeMap<u64, Slot>,
    ids: HashMap<Arc<str>, u64>,
    next_key: u64,
}

impl Children {
    /// Adds a child after all others; `None` if its id is taken.
    pub(super) fn push(&mut self, slot: Slot) -> Option<u64> {
        if self.ids.contains_key(slot.spec.id()) {
            return None;
        }
        self.next_key += 1;
        self.ids.insert(slot.spec.id().clone(), self.next_key);
        self.slots.insert(self.next_key, slot);
        Some(self.next_key)
    }

    pub(super) fn get(&self, key: u64) -> Option<&Slot> {
        self.slots.get(&key)
    }

    pub(super) fn get_mut(&mut self, key: u64) -> Option<&mut Slot> {
        self.slots.get_mut(&key)
    }

    pub(super) fn key_of(&self, id: &str) -> Option<u64> {
        self.ids.get(id).copied()
    }

    pub(super) fn remove(&mut self, key: u64) -> Option<Slot> {
        let slot = self.slots.remove(&key)?;
        self.ids.remove(slot.spec.id());
        Some(slot)
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Keys in start order.
    pub(super) fn keys(&self) -> impl DoubleEndedIterator<Item = u64> + '_ {
        self.slots.keys().copied()
    }

    /// Keys from `key` (included) on, in start order.
    pub(super) fn keys_from(&self, key: u64) -> impl Iterator<Item = u64> + '_ {
        self.slots.range(key..).map(|(k, _)| *k)
    }

    /// Children in start order.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = (u64, &Slot)> + '_ {
        self.slots.iter().map(|(k, s)| (*k, s))
    }

    /// Children in start order, mutably.
    pub(super) fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (u64, &mut Slot)> + '_ {
        self.slots.iter_mut().map(|(k, s)| (*k, s))
    }

    /// The position of `key` in start order (linear; for reports only).
    pub(super) fn position(&self, key: u64) -> usize {
        self.slots.range(..key).count()
    }

    /// What the supervisor reports about every child.
    pub(super) fn infos(&self) -> Vec<ChildInfo> {
        self.slots
            .values()
            .enumerate()
            .map(|(i, s)| s.info(i))
            .collect()
    }
}
