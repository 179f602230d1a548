//! When the engine commits offsets: a small composable value, as Debezium's
//! `OffsetCommitPolicy`.

use std::time::Duration;

/// Decides when acknowledged offsets are flushed to the offset store.
///
/// ```
/// use std::time::Duration;
/// use connect_core::CommitPolicy;
/// // Commit after 10 000 records or every 5 s, whichever comes first.
/// let p = CommitPolicy::every_records(10_000).or(CommitPolicy::periodic(Duration::from_secs(5)));
/// assert!(p.should_commit(10_000, Duration::ZERO));
/// assert!(p.should_commit(1, Duration::from_secs(5)));
/// assert!(!p.should_commit(1, Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum CommitPolicy {
    /// Commit whenever something became committable.
    Always,
    /// Commit once at least this many records became committable.
    EveryRecords(u64),
    /// Commit when this much time passed since the last commit.
    Periodic(Duration),
    /// Either policy.
    Or(Box<CommitPolicy>, Box<CommitPolicy>),
    /// Both policies.
    And(Box<CommitPolicy>, Box<CommitPolicy>),
}

impl Default for CommitPolicy {
    /// Every second: at most one second of duplicates after a crash, few store writes.
    fn default() -> Self {
        CommitPolicy::Periodic(Duration::from_secs(1))
    }
}

impl CommitPolicy {
    /// Commit as soon as anything is committable.
    pub fn always() -> Self {
        CommitPolicy::Always
    }

    /// Commit after `n` records.
    pub fn every_records(n: u64) -> Self {
        CommitPolicy::EveryRecords(n)
    }

    /// Commit every `interval`.
    pub fn periodic(interval: Duration) -> Self {
        CommitPolicy::Periodic(interval)
    }

    /// Commit when either policy says so.
    pub fn or(self, other: CommitPolicy) -> Self {
        CommitPolicy::Or(Box::new(self), Box::new(other))
    }

    /// Commit when both policies say so.
    pub fn and(self, other: CommitPolicy) -> Self {
        CommitPolicy::And(Box::new(self), Box::new(other))
    }

    /// Whether to commit, given the records committable since the last commit and the
    /// time since it.
    pub fn should_commit(&self, records: u64, elapsed: Duration) -> bool {
        match self {
            CommitPolicy::Always => true,
            CommitPolicy::EveryRecords(n) => records >= *n,
            CommitPolicy::Periodic(d) => elapsed >= *d,
            CommitPolicy::Or(a, b) => {
                a.should_commit(records, elapsed) || b.should_commit(records, elapsed)
            }
            CommitPolicy::And(a, b) => {
                a.should_commit(records, elapsed) && b.should_commit(records, elapsed)
            }
        }
    }

    /// How often the committer must wake to evaluate time-based parts (the shortest
    /// period, at most one second).
    pub(crate) fn tick(&self) -> Duration {
        match self {
            CommitPolicy::Periodic(d) => {
                (*d).clamp(Duration::from_millis(1), Duration::from_secs(1))
            }
            CommitPolicy::Or(a, b) | CommitPolicy::And(a, b) => a.tick().min(b.tick()),
            _ => Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn and_needs_both() {
        let p =
            CommitPolicy::every_records(100).and(CommitPolicy::periodic(Duration::from_secs(1)));
        assert!(!p.should_commit(100, Duration::from_millis(10)));
        assert!(!p.should_commit(5, Duration::from_secs(2)));
        assert!(p.should_commit(100, Duration::from_secs(2)));
        assert_eq!(p.tick(), Duration::from_secs(1));
    }
}
