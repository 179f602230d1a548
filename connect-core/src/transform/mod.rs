//! Single message transforms and predicates, chained as Kafka Connect chains them.
//!
//! - [`ExtractNewRecordState`]: Debezium's "unwrap" (`io.debezium.transforms.ExtractNewRecordState`).
//! - [`RegexRouter`]: Kafka's topic router.
//! - [`Filter`] with the predicates [`TopicNameMatches`], [`HasHeaderKey`], [`RecordIsTombstone`].

mod filter;
mod router;
mod unwrap;

use std::sync::Arc;

pub use filter::{Filter, HasHeaderKey, RecordIsTombstone, TopicNameMatches};
pub use router::RegexRouter;
pub use unwrap::{DeleteTombstoneHandling, ExtractNewRecordState};

use crate::error::Error;
use crate::record::Record;

/// Turns one record into zero or one record.
///
/// Called by the engine for every record of a batch, in source order, from the task that
/// polled it; several tasks may call one transform concurrently, so it is `Send + Sync`
/// and keeps caches behind its own locks. An `Err` is a record-level error: the
/// pipeline's `errors.tolerance` decides whether the record fails the pipeline, is
/// skipped, or goes to the dead-letter destination.
pub trait Transform: Send + Sync {
    /// Transforms a record; `Ok(None)` drops it.
    fn apply(&self, record: Record) -> Result<Option<Record>, Error>;
}

/// A condition that gates a transform (Kafka Connect's `predicates.*`).
pub trait Predicate: Send + Sync {
    /// Whether the record matches.
    fn test(&self, record: &Record) -> bool;
}

struct Step {
    alias: Arc<str>,
    transform: Box<dyn Transform>,
    predicate: Option<(Arc<dyn Predicate>, bool)>,
}

/// An ordered chain of transforms, each optionally gated by a (negatable) predicate.
#[derive(Default)]
pub struct TransformChain {
    steps: Vec<Step>,
}

impl std::fmt::Debug for TransformChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.steps.iter().map(|s| &s.alias))
            .finish()
    }
}

impl TransformChain {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a transform applied to every record.
    pub fn push(&mut self, alias: &str, transform: impl Transform + 'static) {
        self.push_boxed(alias, Box::new(transform), None);
    }

    /// Appends a transform applied only where `predicate` matches (or, with `negate`,
    /// where it does not).
    pub fn push_when(
        &mut self,
        alias: &str,
        transform: impl Transform + 'static,
        predicate: Arc<dyn Predicate>,
        negate: bool,
    ) {
        self.push_boxed(alias, Box::new(transform), Some((predicate, negate)));
    }

    pub(crate) fn push_boxed(
        &mut self,
        alias: &str,
        transform: Box<dyn Transform>,
        predicate: Option<(Arc<dyn Predicate>, bool)>,
    ) {
        self.steps.push(Step {
            alias: Arc::from(alias),
            transform,
            predicate,
        });
    }

    /// Whether the chain has no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs the chain on one record. Errors carry the failing step's alias.
    pub fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        for step in &self.steps {
            if let Some((predicate, negate)) = &step.predicate {
                if predicate.test(&record) == *negate {
                    continue;
                }
            }
            let topic = record.topic.clone();
            match step.transform.apply(record) {
                Ok(Some(r)) => {
                    record = r;
                    record.clear_size_estimate();
                }
                Ok(None) => return Ok(None),
                Err(Error::Transform { message, .. }) => {
                    return Err(Error::Transform {
                        transform: step.alias.to_string(),
                        topic: topic.to_string(),
                        message,
                    })
                }
                Err(e) => {
                    return Err(Error::Transform {
                        transform: step.alias.to_string(),
                        topic: topic.to_string(),
                        message: e.to_string(),
                    })
                }
            }
        }
        Ok(Some(record))
    }
}

/// A transform error for `record` (the chain fills in the alias).
pub(crate) fn transform_error(record: &Record, message: impl Into<String>) -> Error {
    Error::Transform {
        transform: String::new(),
        topic: record.topic.to_string(),
        message: message.into(),
    }
}
