//! # connect-file
//!
//! A file line source and a file append sink for [`connect_core`], compatible with Kafka's
//! `FileStreamSourceConnector` / `FileStreamSinkConnector` properties.
//!
//! ## Source ([`FileSource`])
//! - One record per line (`\n` or `\r\n` stripped), value schema `string`, topic `topic`.
//! - Source partition `{"filename": <file>}`, offset `{"position": <byte after the line>}`
//!   (Kafka's keys). After a restart it resumes exactly after the last committed line.
//! - Follows appended data (`follow=true`, the default), checking every
//!   `poll.interval.ms`. With `follow=false` the source ends at the end of the file
//!   (a last line without newline is then emitted too).
//! - A line is emitted only once its newline is written (a writer may be mid-line).
//! - **Truncation and rotation rule** (as `tail -F`): if the file becomes shorter than the
//!   position read (truncated in place, e.g. logrotate `copytruncate`), reading restarts
//!   at byte 0. If the path now names a different file (renamed and re-created), the old
//!   file is read to its end first, then the new one from byte 0. The same rule applies at
//!   start: a committed position beyond the end of the file means it was truncated or
//!   replaced while stopped, and reading starts at byte 0. Each case is logged as a warning.
//! - Errors: a missing file or a permission problem at start is a fatal error naming the
//!   file; a line that is not UTF-8 fails with the file and byte offset
//!   (`invalid.utf8=fail`, default) or is decoded lossily (`invalid.utf8=replace`).
//!
//! ## Sink ([`FileSink`])
//! Appends one converted record value per line (`value.converter`; tombstones as `null`);
//! `flush` fsyncs, so offsets are committed only for lines on disk. On start, a last line
//! without its newline (a write torn by a crash, never flushed, hence never committed and
//! delivered again) is cut off.
//!
//! ## Example
//! ```no_run
//! use connect_core::{Engine, FileOffsetStore, StringConverter};
//! use connect_file::{FileSink, FileSinkConfig, FileSource, FileSourceConfig};
//! # async fn run() -> connect_core::Result<()> {
//! let engine = Engine::builder()
//!     .name("copy")
//!     .source(FileSource::new(FileSourceConfig::new("in.log", "lines"))?)
//!     .offsets(FileOffsetStore::open("copy.offsets")?)
//!     .into_connector(FileSink::new(FileSinkConfig::new("out.log").with_converter(StringConverter))?)
//!     .start()
//!     .await?;
//! engine.wait().await?;
//! # Ok(()) }
//! ```

mod error;
mod sink;
mod source;

pub use error::FileError;
pub use sink::{FileSink, FileSinkConfig};
pub use source::{FileSource, FileSourceConfig, InvalidUtf8};

use std::sync::Arc;

use connect_core::registry::FactoryContext;
use connect_core::{Registry, SinkConnector, SourceConnector};

/// Kafka's class name of the file source, accepted as `connector.class`.
pub const SOURCE_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSourceConnector";
/// Kafka's class name of the file sink, accepted as `connector.class`.
pub const SINK_CLASS: &str = "org.apache.kafka.connect.file.FileStreamSinkConnector";

/// Registers the file source and sink under Kafka's class names.
pub fn register(registry: &mut Registry) {
    registry.register_source(SOURCE_CLASS, |ctx: &FactoryContext<'_>| {
        let config = FileSourceConfig::from_props(&ctx.props)?;
        Ok(Arc::new(FileSource::new(config)?) as Arc<dyn SourceConnector>)
    });
    registry.register_sink(SINK_CLASS, |ctx: &FactoryContext<'_>| {
        let config =
            FileSinkConfig::from_props(&ctx.props)?.with_converter_arc(ctx.value_converter.clone());
        Ok(Arc::new(FileSink::new(config)?) as Arc<dyn SinkConnector>)
    });
}
