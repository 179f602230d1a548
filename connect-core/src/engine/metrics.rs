//! Metrics snapshots and listener hooks.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::Error;
use crate::offsets::OffsetMap;

use super::ShutdownReport;

/// Hooks called by the engine; every method defaults to doing nothing.
///
/// Called from engine tasks: keep them quick and non-blocking.
pub trait EngineListener: Send + Sync {
    /// A task of `pipeline` started (also after a restart).
    fn task_started(&self, _pipeline: &str, _task: usize) {}
    /// A task of `pipeline` stopped.
    fn task_stopped(&self, _pipeline: &str, _task: usize) {}
    /// Offsets became durable in the store.
    fn offsets_committed(&self, _pipeline: &str, _offsets: &OffsetMap) {}
    /// A pipeline stopped on a fatal error.
    fn pipeline_failed(&self, _pipeline: &str, _error: &Error) {}
    /// The engine stopped.
    fn stopped(&self, _report: &ShutdownReport) {}
}

/// A listener that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopListener;

impl EngineListener for NoopListener {}

/// Live counters of one pipeline (updated per batch, never per record).
#[derive(Debug, Default)]
pub(crate) struct PipelineMetrics {
    pub seen: AtomicU64,
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub filtered: AtomicU64,
    pub queue_batches: AtomicUsize,
    pub queue_bytes: AtomicUsize,
    pub behind_ms: AtomicI64,
    pub commits: AtomicU64,
    pub last_committed: Mutex<OffsetMap>,
    pub error: Mutex<Option<String>>,
}

impl PipelineMetrics {
    pub fn snapshot(&self, name: &str) -> PipelineSnapshot {
        let behind = self.behind_ms.load(Ordering::Relaxed);
        PipelineSnapshot {
            name: name.to_owned(),
            events_seen: self.seen.load(Ordering::Relaxed),
            events_delivered: self.delivered.load(Ordering::Relaxed),
            events_failed: self.failed.load(Ordering::Relaxed),
            events_filtered: self.filtered.load(Ordering::Relaxed),
            queue_batches: self.queue_batches.load(Ordering::Relaxed),
            queue_bytes: self.queue_bytes.load(Ordering::Relaxed),
            millis_behind_source: (behind >= 0).then_some(behind),
            commits: self.commits.load(Ordering::Relaxed),
            last_committed: self
                .last_committed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            error: self.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// A point-in-time view of one pipeline.
#[derive(Debug, Clone)]
pub struct PipelineSnapshot {
    /// Pipeline name.
    pub name: String,
    /// Records polled from the source.
    pub events_seen: u64,
    /// Records acknowledged by the destination.
    pub events_delivered: u64,
    /// Records that failed a transform or conversion (skipped or dead-lettered).
    pub events_failed: u64,
    /// Records dropped by transforms (filters, unwrap of truncates).
    pub events_filtered: u64,
    /// Batches handed to the destination and not yet acknowledged.
    pub queue_batches: usize,
    /// Estimated bytes of those batches.
    pub queue_bytes: usize,
    /// Time between the newest delivered record's source timestamp and its ack.
    pub millis_behind_source: Option<i64>,
    /// Successful offset commits.
    pub commits: u64,
    /// Offsets last made durable, by source partition.
    pub last_committed: OffsetMap,
    /// The fatal error that stopped the pipeline, if any.
    pub error: Option<String>,
}

/// A point-in-time view of the engine.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    /// One entry per pipeline.
    pub pipelines: Vec<PipelineSnapshot>,
}

impl MetricsSnapshot {
    /// The snapshot of a pipeline by name.
    pub fn pipeline(&self, name: &str) -> Option<&PipelineSnapshot> {
        self.pipelines.iter().find(|p| p.name == name)
    }
}
