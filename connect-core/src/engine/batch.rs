//! What a destination receives: a batch of records with its acknowledgement.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::OwnedSemaphorePermit;

use super::pipeline::Shared;
use crate::convert::{Converter, JsonConverter};
use crate::envelope::ChangeEvent;
use crate::error::{BoxError, Error};
use crate::record::Record;

/// The acknowledgement of one batch. Acking releases the batch's share of the queue and
/// lets the offsets move past it; dropping it unacknowledged is a nack, which stops the
/// pipeline (a batch is never silently skipped).
#[must_use = "dropping a batch without acking it is a nack and stops the pipeline"]
pub(crate) struct AckHandle {
    pub(super) shared: Arc<Shared>,
    pub(super) task: usize,
    pub(super) seq: u64,
    pub(super) records: usize,
    pub(super) bytes: usize,
    pub(super) newest_ts_ms: Option<i64>,
    pub(super) permits: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

impl AckHandle {
    pub(super) fn ack(mut self) {
        let permits = self.permits.take();
        self.shared.acknowledge(
            self.task,
            self.seq,
            self.records,
            self.bytes,
            self.newest_ts_ms,
        );
        drop(permits);
    }
}

impl Drop for AckHandle {
    fn drop(&mut self) {
        if self.permits.is_some() {
            let permits = self.permits.take();
            self.shared
                .metrics
                .queue_batches
                .fetch_sub(1, Ordering::Relaxed);
            self.shared
                .metrics
                .queue_bytes
                .fetch_sub(self.bytes, Ordering::Relaxed);
            self.shared.nack(self.seq);
            drop(permits);
        }
    }
}

/// A batch of records delivered to a channel destination. Call [`Batch::ack`] once the
/// records are processed (durably, if you need them to survive a crash).
pub struct Batch {
    records: Vec<Record>,
    handle: AckHandle,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("seq", &self.handle.seq)
            .field("records", &self.records.len())
            .finish()
    }
}

impl Batch {
    pub(super) fn new(records: Vec<Record>, handle: AckHandle) -> Self {
        Batch { records, handle }
    }

    /// The records, in source order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch has no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records that are change events, as typed views.
    pub fn changes(&self) -> impl Iterator<Item = ChangeEvent<'_>> {
        self.records.iter().filter_map(ChangeEvent::from_record)
    }

    /// Each record's value as Debezium's JSON (`JsonConverter` with schemas); `None`
    /// for tombstones.
    pub fn to_json(&self) -> Result<Vec<Option<String>>, Error> {
        let conv = JsonConverter::default();
        let mut buf = Vec::with_capacity(1024);
        self.records
            .iter()
            .map(|r| {
                buf.clear();
                let written =
                    conv.serialize(&r.topic, r.value_schema.as_ref(), &r.value, &mut buf)?;
                Ok(written.then(|| String::from_utf8_lossy(&buf).into_owned()))
            })
            .collect()
    }

    /// The estimated bytes this batch holds in the queue.
    pub fn size_estimate(&self) -> usize {
        self.handle.bytes
    }

    /// Acknowledges the batch: its records are processed.
    pub fn ack(self) {
        self.handle.ack();
    }

    /// Splits into the records and a [`Committer`], to ack after the records were moved on.
    pub fn into_parts(self) -> (Vec<Record>, Committer) {
        (self.records, Committer(self.handle))
    }
}

/// The acknowledgement of a batch whose records were taken (Debezium's
/// `RecordCommitter`). Dropping it unfinished is a nack.
pub struct Committer(AckHandle);

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Committer").field(&self.0.seq).finish()
    }
}

impl Committer {
    /// Marks the whole batch processed (Debezium's `markBatchFinished`).
    pub fn mark_batch_finished(self) {
        self.0.ack();
    }

    /// Fails the batch with the destination's own error (e.g. a rejected delivery): the
    /// pipeline stops with `error` instead of a bare nack, and its offsets stay before this
    /// batch.
    pub fn fail(self, error: impl Into<BoxError>) {
        let shared = self.0.shared.clone();
        shared.fail(Error::Destination {
            pipeline: shared.name.to_string(),
            retryable: false,
            source: error.into(),
        });
    }
}

/// The receiving end of a channel destination.
pub type BatchReceiver = tokio::sync::mpsc::Receiver<Batch>;

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
