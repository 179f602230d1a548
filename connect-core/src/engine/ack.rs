//! Contiguous acknowledgement: which offsets are safe to commit when acks arrive out of
//! order.
//!
//! Every batch a task produces is numbered in the task's order (each task owns its source
//! partitions, so this is the partition's order). A batch's offsets become committable
//! only when it and every batch numbered before it are acknowledged.

use std::collections::{HashMap, VecDeque};

use crate::record::{SourceOffset, SourcePartition};

#[derive(Debug)]
struct Pending {
    seq: u64,
    acked: bool,
    records: usize,
    offsets: Vec<(SourcePartition, SourceOffset)>,
    /// A part of a split poll that more parts follow (its offsets come with the last).
    continues: bool,
}

/// Tracks one task's in-flight batches.
#[derive(Debug, Default)]
pub(crate) struct AckTracker {
    next_seq: u64,
    pending: VecDeque<Pending>,
    committable: HashMap<SourcePartition, SourceOffset>,
    /// Records made committable since the last `take_committable`.
    newly_committable_records: usize,
    changed: bool,
    /// The last batch released is a part of a split poll that more parts follow.
    inside_poll: bool,
}

impl AckTracker {
    /// Numbers a batch (a whole poll, or a split poll's last part); `offsets` are the
    /// positions reached after it.
    pub fn register(
        &mut self,
        records: usize,
        offsets: Vec<(SourcePartition, SourceOffset)>,
    ) -> u64 {
        self.push(records, offsets, false)
    }

    /// Numbers a part of a split poll that more parts follow.
    pub fn register_part(&mut self, records: usize) -> u64 {
        self.push(records, Vec::new(), true)
    }

    fn push(
        &mut self,
        records: usize,
        offsets: Vec<(SourcePartition, SourceOffset)>,
        continues: bool,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back(Pending {
            seq,
            acked: false,
            records,
            offsets,
            continues,
        });
        seq
    }

    /// Acknowledges a batch; returns how many records became committable.
    pub fn ack(&mut self, seq: u64) -> usize {
        let Some(front_seq) = self.pending.front().map(|p| p.seq) else {
            return 0;
        };
        let Some(index) = seq.checked_sub(front_seq).map(|i| i as usize) else {
            return 0;
        };
        if let Some(p) = self.pending.get_mut(index) {
            p.acked = true;
        }
        let mut advanced = 0;
        while self.pending.front().is_some_and(|p| p.acked) {
            let p = self.pending.pop_front().expect("front exists");
            advanced += p.records;
            self.inside_poll = p.continues;
            for (partition, offset) in p.offsets {
                self.committable.insert(partition, offset);
                self.changed = true;
            }
        }
        self.newly_committable_records += advanced;
        advanced
    }

    /// Whether the acknowledged records end where a poll's offsets do: false between
    /// the parts of a split poll, where the committable offsets are behind records
    /// already delivered. A sink that stores offsets with its rows must not commit there.
    pub fn at_poll_boundary(&self) -> bool {
        !self.inside_poll
    }

    /// Batches registered and not yet acknowledged (or behind an unacknowledged one).
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Records committable since the last call to `take_changes`.
    pub fn records_since_commit(&self) -> usize {
        self.newly_committable_records
    }

    /// The committable offsets, if they changed since the last call.
    pub fn take_changes(&mut self) -> Option<Vec<(SourcePartition, SourceOffset)>> {
        self.newly_committable_records = 0;
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        Some(
            self.committable
                .iter()
                .map(|(p, o)| (p.clone(), o.clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off(pos: i64) -> Vec<(SourcePartition, SourceOffset)> {
        vec![(
            SourcePartition::server("s"),
            SourceOffset::single("pos", pos),
        )]
    }

    fn committed_pos(t: &mut AckTracker) -> Option<i64> {
        t.take_changes()
            .map(|c| c[0].1.get("pos").and_then(|v| v.as_i64()).unwrap())
    }

    #[test]
    fn out_of_order_acks_commit_only_the_contiguous_prefix() {
        let mut t = AckTracker::default();
        let a = t.register(10, off(10));
        let b = t.register(10, off(20));
        let c = t.register(10, off(30));
        assert_eq!(t.ack(c), 0);
        assert_eq!(committed_pos(&mut t), None, "c alone must not commit");
        assert_eq!(t.ack(a), 10);
        assert_eq!(committed_pos(&mut t), Some(10));
        assert_eq!(t.ack(b), 20);
        assert_eq!(committed_pos(&mut t), Some(30));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn a_split_poll_is_a_boundary_only_after_its_last_part() {
        let p = SourcePartition::server("s");
        let mut t = AckTracker::default();
        let first = t.register_part(2);
        assert!(t.at_poll_boundary());
        t.ack(first);
        // The last part may not even be registered yet (back-pressure between parts).
        assert!(!t.at_poll_boundary());
        let last = t.register(2, vec![(p.clone(), SourceOffset::single("n", 4))]);
        t.ack(last);
        assert!(t.at_poll_boundary());
        // A poll without offsets (a source that has none) ends at a boundary too.
        let lone = t.register(1, Vec::new());
        t.ack(lone);
        assert!(t.at_poll_boundary());
    }

    #[test]
    fn split_parts_without_offsets_still_block() {
        let mut t = AckTracker::default();
        let part1 = t.register(5, Vec::new());
        let part2 = t.register(5, off(100));
        t.ack(part2);
        assert_eq!(committed_pos(&mut t), None);
        t.ack(part1);
        assert_eq!(committed_pos(&mut t), Some(100));
    }

    #[test]
    fn duplicate_and_stale_acks_are_harmless() {
        let mut t = AckTracker::default();
        let a = t.register(1, off(1));
        t.ack(a);
        t.ack(a);
        assert_eq!(committed_pos(&mut t), Some(1));
        assert_eq!(t.ack(99), 0);
    }
}
