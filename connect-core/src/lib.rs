//! # connect-core
//!
//! The data model, connector traits and in-process engine of **connect**, an embeddable
//! change-data-capture and connector framework: what the Debezium embedded engine and
//! Kafka Connect are to the JVM, as a cargo dependency.
//!
//! ## Core concepts
//! - [`Schema`] / [`Value`] / [`Record`]: Kafka Connect's data model; schemas are shared
//!   and carry their JSON, strings and bytes can borrow received buffers.
//! - [`envelope`]: Debezium 3.x change events (`before`, `after`, `source`, `op`, ...).
//! - [`SourceConnector`] / [`SourceTask`], [`SinkConnector`] / [`SinkTask`]: connectors.
//! - [`Engine`]: runs pipelines source → [`transform`]s → destination (a channel, a
//!   callback, a `futures::Sink` or a sink connector); commits offsets to an
//!   [`OffsetStore`] only after the destination acknowledged the records.
//! - [`convert`]: Debezium's JSON (Kafka's `JsonConverter`), string and byte converters.
//! - [`Registry`]: builds pipelines from Debezium / Kafka Connect properties.
//! - [`columns`]: the column filters and masks (`column.*` keys) connectors share.
//!
//! ## Delivery guarantee
//! At-least-once: offsets move only past batches that were acknowledged and whose offsets
//! were flushed to the store; after a crash, the records of the last uncommitted batches
//! are delivered again, with the same [`EventId`]s.
//!
//! ## Example
//! A finite source of three lines, delivered to a channel:
//! ```
//! use std::sync::Arc;
//! use connect_core::*;
//!
//! struct Numbers;
//! struct NumbersTask { next: i64 }
//!
//! impl SourceConnector for Numbers {
//!     fn name(&self) -> &str { "numbers" }
//!     fn task_configs(&self, _max: usize) -> Result<Vec<TaskConfig>> { Ok(vec![TaskConfig::new()]) }
//!     fn create_task(&self) -> Box<dyn SourceTask> { Box::new(NumbersTask { next: 0 }) }
//! }
//!
//! #[async_trait::async_trait]
//! impl Task for NumbersTask {
//!     async fn start(&mut self, ctx: TaskContext) -> Result<()> {
//!         let partition = SourcePartition::server("numbers");
//!         self.next = ctx.offset(&partition).and_then(|o| o.get("n")?.as_i64()).unwrap_or(0);
//!         Ok(())
//!     }
//!     async fn stop(&mut self) -> Result<()> { Ok(()) }
//!     fn version(&self) -> &str { "1" }
//! }
//!
//! #[async_trait::async_trait]
//! impl SourceTask for NumbersTask {
//!     async fn poll(&mut self) -> Result<Option<SourceBatch>> {
//!         if self.next == 3 { return Ok(None); }
//!         self.next += 1;
//!         let record = Record::new(Arc::from("numbers"), None, Value::Int64(self.next));
//!         Ok(Some(SourceBatch::new(vec![record], SourcePartition::server("numbers"),
//!             SourceOffset::single("n", self.next))))
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let offsets = MemoryOffsetStore::new();
//! let (engine, mut batches) = Engine::builder()
//!     .name("demo")
//!     .source(Numbers)
//!     .offsets(offsets.clone())
//!     .into_channel(8)
//!     .start()
//!     .await?;
//! let mut seen = Vec::new();
//! while let Some(batch) = batches.recv().await {
//!     seen.extend(batch.records().iter().filter_map(|r| r.value.as_i64()));
//!     batch.ack();
//! }
//! let report = engine.wait().await?;
//! assert_eq!(seen, [1, 2, 3]);
//! assert!(report.drained() && report.committed());
//! let committed = offsets.snapshot("demo");
//! assert_eq!(committed[&SourcePartition::server("numbers")].get("n"), Some(&3.into()));
//! # Ok::<_, Error>(()) }).unwrap();
//! ```

pub mod calendar;
pub mod columns;
pub mod connector;
pub mod convert;
pub mod engine;
pub mod envelope;
pub mod error;
pub mod history;
pub mod jobs;
pub mod modes;
pub mod offsets;
pub mod properties;
pub mod record;
pub mod registry;
pub mod schema;
#[cfg(feature = "test-utils")]
pub mod testing;
pub mod transaction;
pub mod transform;
pub mod value;

pub use async_trait::async_trait;
/// The text type of [`Value::String`], shared by reference count.
pub use bytestring::ByteString;
pub use connector::{
    CommitRequest, SinkConnector, SinkTask, SourceBatch, SourceConnector, SourceTask, Task,
    TaskConfig, TaskContext,
};
pub use convert::{
    ByteArrayConverter, CloudEventsConverter, Converter, JsonConverter, StringConverter,
};
pub use engine::{
    Batch, BatchReceiver, CommitPolicy, Committer, DeadLetterQueue, Engine, EngineBuilder,
    EngineListener, ErrorContext, ErrorTolerance, MetricsSnapshot, Pipeline, PipelineBuilder,
    PipelineReport, PipelineSettings, ShutdownReport, StopHandle,
};
pub use envelope::{ChangeEvent, EnvelopeSchema, Op};
pub use error::{BoxError, Error, Result, RetryDirective};
pub use history::{FileSchemaHistory, HistoryRecord, MemorySchemaHistory, SchemaHistory};
pub use offsets::{FileOffsetStore, MemoryOffsetStore, OffsetMap, OffsetStore};
pub use properties::Properties;
pub use record::{EventId, Header, Record, SourceOffset, SourcePartition};
pub use registry::{Registry, SINK_RUNNER_CLASS};
pub use schema::{Field, Schema, SchemaBuilder, SchemaType};
pub use value::{Struct, Value};
