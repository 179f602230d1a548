//! Single message transforms and predicates, chained as Kafka Connect chains them.
//!
//! - [`ExtractNewRecordState`]: Debezium's "unwrap" (`io.debezium.transforms.ExtractNewRecordState`).
//! - [`RegexRouter`]: Kafka's topic router.
//! - Debezium's outbox [`EventRouter`] and [`ByLogicalTableRouter`].
//! - [`Filter`] with the predicates [`TopicNameMatches`], [`HasHeaderKey`], [`RecordIsTombstone`].
//! - Kafka Connect's field transforms, in `$Key` / `$Value` forms chosen by [`Side`]:
//!   [`InsertField`], [`ReplaceField`], [`MaskField`], [`ValueToKey`], [`ExtractField`],
//!   [`HoistField`], [`SetSchemaMetadata`], [`Cast`], [`Flatten`], [`TimestampConverter`].
//! - Kafka Connect's [`TimestampRouter`] and header transforms [`InsertHeader`],
//!   [`DropHeaders`], [`HeaderFrom`].

mod cast;
mod datefmt;
mod debezium;
mod expand;
mod fields;
mod filter;
mod headers;
mod router;
mod timestamp;
mod unwrap;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use cast::{Cast, Flatten};
pub use datefmt::DateFormat;
pub use debezium::{ByLogicalTableRouter, EventRouter};
pub use fields::{
    ExtractField, HoistField, InsertField, MaskField, ReplaceField, SetSchemaMetadata, ValueToKey,
};
pub use filter::{Filter, HasHeaderKey, RecordIsTombstone, TopicNameMatches};
pub use headers::{parse_literal, DropHeaders, HeaderFrom, InsertHeader};
pub use router::RegexRouter;
pub use timestamp::{TimestampConverter, TimestampRouter};
pub use unwrap::{DeleteTombstoneHandling, ExtractNewRecordState};

use crate::error::Error;
use crate::record::Record;
use crate::schema::Schema;
use crate::value::Value;

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

/// Which part of a record a Kafka Connect `$Key` / `$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The key (`...$Key`).
    Key,
    /// The value (`...$Value`).
    Value,
}

impl Side {
    /// The side a class name ends with (`$Key`, `$Value`).
    pub fn of_class(class: &str) -> Option<Side> {
        if class.ends_with("$Key") {
            Some(Side::Key)
        } else if class.ends_with("$Value") {
            Some(Side::Value)
        } else {
            None
        }
    }

    fn schema(self, record: &Record) -> Option<&Arc<Schema>> {
        match self {
            Side::Key => record.key_schema.as_ref(),
            Side::Value => record.value_schema.as_ref(),
        }
    }

    fn value(self, record: &Record) -> &Value {
        match self {
            Side::Key => &record.key,
            Side::Value => &record.value,
        }
    }

    fn take(self, record: &mut Record) -> (Option<Arc<Schema>>, Value) {
        match self {
            Side::Key => (record.key_schema.take(), std::mem::take(&mut record.key)),
            Side::Value => (
                record.value_schema.take(),
                std::mem::take(&mut record.value),
            ),
        }
    }

    fn set(self, record: &mut Record, schema: Option<Arc<Schema>>, value: Value) {
        match self {
            Side::Key => {
                record.key_schema = schema;
                record.key = value;
            }
            Side::Value => {
                record.value_schema = schema;
                record.value = value;
            }
        }
    }
}

/// Output schemas built once per input schema. Keyed by the input's address, the input
/// kept alive so that the address stays its own; cleared when it grows past a bound, as
/// schemas only pile up when tables keep changing.
#[derive(Debug, Default)]
pub(crate) struct SchemaCache(Mutex<SchemaMap>);

/// Input schema address → (that input, its output).
type SchemaMap = HashMap<usize, (Arc<Schema>, Arc<Schema>)>;

impl SchemaCache {
    const MAX: usize = 1024;

    /// The cached output for `input`, or `build`'s (then cached).
    pub(crate) fn get_or_try<E>(
        &self,
        input: &Arc<Schema>,
        build: impl FnOnce(&Arc<Schema>) -> Result<Arc<Schema>, E>,
    ) -> Result<Arc<Schema>, E> {
        let key = Arc::as_ptr(input) as usize;
        if let Some((_, out)) = self.lock().get(&key) {
            return Ok(out.clone());
        }
        let out = build(input)?;
        let mut cache = self.lock();
        if cache.len() >= Self::MAX {
            cache.clear();
        }
        cache.insert(key, (input.clone(), out.clone()));
        Ok(out)
    }

    /// The cached output for `input`, or `build`'s (then cached), for builds that cannot fail.
    pub(crate) fn get_or_build(
        &self,
        input: &Arc<Schema>,
        build: impl FnOnce(&Arc<Schema>) -> Arc<Schema>,
    ) -> Arc<Schema> {
        self.get_or_try(input, |s| Ok::<_, std::convert::Infallible>(build(s)))
            .unwrap_or_else(|never| match never {})
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SchemaMap> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
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
