//! The line source: one record per line, resumable at the byte after the last committed line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use connect_core::properties::Scope;
use connect_core::{
    async_trait, Error, EventId, Record, Schema, SchemaType, SourceBatch, SourceConnector,
    SourceOffset, SourcePartition, SourceTask, Task, TaskConfig, TaskContext, Value,
};
use serde_json::{Map, Value as Json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::FileError;

/// Default `batch.size` (Kafka's file source default).
pub const DEFAULT_BATCH_SIZE: usize = 2000;
/// Default `poll.interval.ms`: how often the end of a followed file is checked.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
const READ_CHUNK: usize = 64 * 1024;

/// What to do with a line that is not UTF-8 (`invalid.utf8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvalidUtf8 {
    /// Stop with an error naming the file and byte offset.
    #[default]
    Fail,
    /// Replace invalid sequences with U+FFFD.
    Replace,
}

/// Configuration of [`FileSource`].
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    file: PathBuf,
    topic: Arc<str>,
    batch_size: usize,
    poll_interval: Duration,
    follow: bool,
    invalid_utf8: InvalidUtf8,
}

impl FileSourceConfig {
    /// Reads `file` into `topic`, following appended data.
    pub fn new(file: impl Into<PathBuf>, topic: &str) -> Self {
        FileSourceConfig {
            file: file.into(),
            topic: Arc::from(topic),
            batch_size: DEFAULT_BATCH_SIZE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            follow: true,
            invalid_utf8: InvalidUtf8::Fail,
        }
    }

    /// Lines per batch (`batch.size`).
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// How often a followed file is checked for new data (`poll.interval.ms`).
    pub fn with_poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    /// Keep waiting for appended data at the end of the file (`follow`, default true).
    pub fn with_follow(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }

    /// Policy for lines that are not UTF-8 (`invalid.utf8`).
    pub fn with_invalid_utf8(mut self, policy: InvalidUtf8) -> Self {
        self.invalid_utf8 = policy;
        self
    }

    /// Reads `file`, `topic`, `batch.size`, `poll.interval.ms`, `follow`, `invalid.utf8`.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let mut c = Self::new(scope.require("file")?, scope.require("topic")?);
        c.batch_size = scope.parse_or("batch.size", DEFAULT_BATCH_SIZE)?;
        c.poll_interval = scope.millis_or("poll.interval.ms", DEFAULT_POLL_INTERVAL)?;
        c.follow = scope.bool_or("follow", true)?;
        c.invalid_utf8 = match scope.one_of("invalid.utf8", &["fail", "replace"], "fail")? {
            "replace" => InvalidUtf8::Replace,
            _ => InvalidUtf8::Fail,
        };
        c.validate()?;
        Ok(c)
    }

    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.file.as_os_str().is_empty() {
            return Err(Error::config("file", "must not be empty"));
        }
        if self.topic.is_empty() {
            return Err(Error::config("topic", "must not be empty"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch.size", "must be greater than 0"));
        }
        if self.poll_interval.is_zero() {
            return Err(Error::config("poll.interval.ms", "must be greater than 0"));
        }
        Ok(())
    }

    /// The source partition of this file: `{"filename": <file>}`.
    pub fn partition(&self) -> SourcePartition {
        let mut m = Map::new();
        m.insert(
            "filename".into(),
            Json::String(self.file.to_string_lossy().into_owned()),
        );
        SourcePartition::from_map(&m)
    }
}

/// Kafka's file source: one record per line of one file.
#[derive(Debug, Clone)]
pub struct FileSource {
    config: Arc<FileSourceConfig>,
}

impl FileSource {
    /// A source for a validated configuration.
    pub fn new(config: FileSourceConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(FileSource {
            config: Arc::new(config),
        })
    }
}

impl SourceConnector for FileSource {
    fn name(&self) -> &str {
        "file-source"
    }

    fn validate(&self) -> Result<(), Error> {
        self.config.validate()
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, Error> {
        // One file is one ordered stream: one task.
        Ok(vec![TaskConfig::new()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(FileSourceTask::new(self.config.clone()))
    }
}

struct OpenFile {
    file: tokio::fs::File,
    inode: u64,
}

struct FileSourceTask {
    config: Arc<FileSourceConfig>,
    partition: SourcePartition,
    path_bytes: Bytes,
    schema: Arc<Schema>,
    open: Option<OpenFile>,
    buf: BytesMut,
    /// File offset of `buf[0]`: the byte after the last line handed out.
    position: u64,
    finished: bool,
}

fn inode_of(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        std::os::unix::fs::MetadataExt::ino(meta)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

impl FileSourceTask {
    fn new(config: Arc<FileSourceConfig>) -> Self {
        FileSourceTask {
            partition: config.partition(),
            path_bytes: Bytes::from(config.file.to_string_lossy().into_owned()),
            schema: Schema::required(SchemaType::String),
            config,
            open: None,
            buf: BytesMut::new(),
            position: 0,
            finished: false,
        }
    }

    fn path(&self) -> &Path {
        &self.config.file
    }

    async fn open(&self) -> Result<OpenFile, FileError> {
        let open_err = |source| FileError::Open {
            path: self.path().to_path_buf(),
            source,
        };
        let file = tokio::fs::File::open(self.path()).await.map_err(open_err)?;
        let meta = file.metadata().await.map_err(open_err)?;
        if meta.is_dir() {
            return Err(open_err(std::io::Error::other("is a directory")));
        }
        Ok(OpenFile {
            file,
            inode: inode_of(&meta),
        })
    }

    fn offset(&self) -> SourceOffset {
        let mut m = Map::new();
        m.insert("position".into(), Json::from(self.position));
        if let Some(o) = &self.open {
            m.insert("inode".into(), Json::from(o.inode));
        }
        SourceOffset::new(m)
    }

    fn record(&self, line_start: u64, mut line: Bytes) -> Result<Record, FileError> {
        let inode = self.open.as_ref().map_or(0, |o| o.inode);
        let id = EventId::from_parts(&[
            &self.path_bytes,
            &inode.to_le_bytes(),
            &line_start.to_le_bytes(),
            &line,
        ]);
        if line.ends_with(b"\n") {
            line.truncate(line.len() - 1);
        }
        if line.ends_with(b"\r") {
            line.truncate(line.len() - 1);
        }
        let value = match Value::string_from_bytes(line.clone()) {
            Ok(v) => v,
            Err(_) if self.config.invalid_utf8 == InvalidUtf8::Replace => {
                Value::from(String::from_utf8_lossy(&line).into_owned())
            }
            Err(_) => {
                return Err(FileError::InvalidUtf8 {
                    path: self.path().to_path_buf(),
                    offset: line_start,
                })
            }
        };
        Ok(
            Record::new(self.config.topic.clone(), Some(self.schema.clone()), value)
                .with_event_id(id),
        )
    }

    /// Complete lines from the buffer, up to `batch.size`.
    fn take_lines(&mut self) -> Result<Vec<Record>, FileError> {
        let mut records = Vec::new();
        while records.len() < self.config.batch_size {
            let Some(i) = self.buf.iter().position(|&b| b == b'\n') else {
                break;
            };
            let line = self.buf.split_to(i + 1).freeze();
            let start = self.position;
            self.position += line.len() as u64;
            records.push(self.record(start, line)?);
        }
        Ok(records)
    }

    /// At the end of the file: applies the truncation / rotation rule. Returns the last
    /// line of a rotated-away file, if it had no newline.
    async fn check_file_change(&mut self) -> Result<Option<Record>, FileError> {
        let meta = match tokio::fs::metadata(self.path()).await {
            Ok(m) => m,
            // Renamed away and not re-created yet: keep following the open file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(FileError::Read {
                    path: self.path().to_path_buf(),
                    source,
                })
            }
        };
        let current = self.open.as_ref().map_or(0, |o| o.inode);
        if inode_of(&meta) != current {
            tracing::warn!(file = %self.path().display(), "file was replaced (rotated): reading the new file from its start");
            let tail = (!self.buf.is_empty()).then(|| {
                let start = self.position;
                let line = self.buf.split().freeze();
                self.position += line.len() as u64;
                (start, line)
            });
            let last = match tail {
                Some((start, line)) => Some(self.record(start, line)?),
                None => None,
            };
            self.open = Some(self.open().await?);
            self.position = 0;
            self.buf.clear();
            return Ok(last);
        }
        let read_end = self.position + self.buf.len() as u64;
        if meta.len() < read_end {
            tracing::warn!(file = %self.path().display(), size = meta.len(), position = read_end, "file was truncated: reading it again from its start");
            self.restart_at_zero().await?;
        }
        Ok(None)
    }

    async fn restart_at_zero(&mut self) -> Result<(), FileError> {
        let path = self.path().to_path_buf();
        if let Some(o) = &mut self.open {
            o.file
                .seek(std::io::SeekFrom::Start(0))
                .await
                .map_err(|source| FileError::Read { path, source })?;
        }
        self.position = 0;
        self.buf.clear();
        Ok(())
    }

    fn batch(&self, records: Vec<Record>) -> SourceBatch {
        SourceBatch::new(records, self.partition.clone(), self.offset())
    }
}

#[async_trait]
impl Task for FileSourceTask {
    async fn start(&mut self, ctx: TaskContext) -> Result<(), Error> {
        let opened = self.open().await?;
        let meta_len = opened.file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let committed = ctx.offset(&self.partition);
        let position = committed
            .and_then(|o| o.get("position")?.as_u64())
            .unwrap_or(0);
        let inode = committed.and_then(|o| o.get("inode")?.as_u64());
        self.open = Some(opened);
        self.buf.clear();
        self.finished = false;
        self.position = position;
        let current_inode = self.open.as_ref().map_or(0, |o| o.inode);
        if inode.is_some_and(|i| i != current_inode) {
            tracing::warn!(file = %self.path().display(), "file was replaced while stopped: reading it from its start");
            self.position = 0;
        } else if position > meta_len {
            tracing::warn!(file = %self.path().display(), position, size = meta_len, "file is shorter than the committed position (truncated while stopped): reading it from its start");
            self.position = 0;
        }
        let target = self.position;
        let path = self.path().to_path_buf();
        let o = self.open.as_mut().expect("opened above");
        o.file
            .seek(std::io::SeekFrom::Start(target))
            .await
            .map_err(|source| FileError::Read { path, source })?;
        tracing::info!(file = %self.path().display(), position = target, "file source started");
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), Error> {
        self.open = None;
        Ok(())
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
}

#[async_trait]
impl SourceTask for FileSourceTask {
    async fn poll(&mut self) -> Result<Option<SourceBatch>, Error> {
        if self.finished {
            return Ok(None);
        }
        loop {
            let records = self.take_lines()?;
            if !records.is_empty() {
                return Ok(Some(self.batch(records)));
            }
            self.buf.reserve(READ_CHUNK);
            let path = self.path().to_path_buf();
            let open = self
                .open
                .as_mut()
                .ok_or_else(|| Error::fatal("file-source", "poll before start"))?;
            let n = open
                .file
                .read_buf(&mut self.buf)
                .await
                .map_err(|source| FileError::Read { path, source })?;
            if n > 0 {
                continue;
            }
            if let Some(last) = self.check_file_change().await? {
                return Ok(Some(self.batch(vec![last])));
            }
            if !self.config.follow {
                self.finished = true;
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let start = self.position;
                let line = self.buf.split().freeze();
                self.position += line.len() as u64;
                let last = self.record(start, line)?;
                return Ok(Some(self.batch(vec![last])));
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_core::OffsetMap;
    use std::io::Write;

    fn ctx(offsets: OffsetMap) -> TaskContext {
        let (_tx, rx) = tokio::sync::watch::channel(Arc::new(OffsetMap::new()));
        TaskContext {
            engine: Arc::from("t"),
            pipeline: Arc::from("t"),
            task_id: 0,
            config: TaskConfig::new(),
            offsets,
            committed: rx,
            commit: Default::default(),
        }
    }

    fn lines(batch: &SourceBatch) -> Vec<String> {
        batch
            .records
            .iter()
            .map(|r| r.value.as_str().unwrap().to_owned())
            .collect()
    }

    fn position(batch: &SourceBatch) -> u64 {
        batch.offsets[0]
            .1
            .get("position")
            .unwrap()
            .as_u64()
            .unwrap()
    }

    #[tokio::test]
    async fn reads_lines_and_resumes_after_the_committed_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "a\r\nbb\nccc").unwrap();
        let config = Arc::new(FileSourceConfig::new(&path, "t").with_follow(false));
        let mut task = FileSourceTask::new(config.clone());
        task.start(ctx(OffsetMap::new())).await.unwrap();
        let b = task.poll().await.unwrap().unwrap();
        assert_eq!(lines(&b), ["a", "bb"]);
        assert_eq!(position(&b), 6);
        let last = task.poll().await.unwrap().unwrap();
        assert_eq!(lines(&last), ["ccc"]);
        assert!(task.poll().await.unwrap().is_none());

        let mut resumed = FileSourceTask::new(config.clone());
        let offsets: OffsetMap = [(config.partition(), b.offsets[0].1.clone())].into();
        resumed.start(ctx(offsets)).await.unwrap();
        assert_eq!(lines(&resumed.poll().await.unwrap().unwrap()), ["ccc"]);
    }

    #[tokio::test(start_paused = true)]
    async fn follows_appends_and_waits_for_the_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "one\ntw").unwrap();
        let mut task = FileSourceTask::new(Arc::new(FileSourceConfig::new(&path, "t")));
        task.start(ctx(OffsetMap::new())).await.unwrap();
        assert_eq!(lines(&task.poll().await.unwrap().unwrap()), ["one"]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"o\nthree\n").unwrap();
        assert_eq!(
            lines(&task.poll().await.unwrap().unwrap()),
            ["two", "three"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn truncation_restarts_at_zero_and_rotation_switches_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, "old1\nold2\n").unwrap();
        let mut task = FileSourceTask::new(Arc::new(FileSourceConfig::new(&path, "t")));
        task.start(ctx(OffsetMap::new())).await.unwrap();
        assert_eq!(
            lines(&task.poll().await.unwrap().unwrap()),
            ["old1", "old2"]
        );
        // copytruncate: same file, shorter.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"new\n")
            .unwrap();
        assert_eq!(lines(&task.poll().await.unwrap().unwrap()), ["new"]);
        // rename + re-create: the old file's unterminated tail, then the new file.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"tail")
            .unwrap();
        std::fs::rename(&path, dir.path().join("in.txt.1")).unwrap();
        std::fs::write(&path, "fresh\n").unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            got.extend(lines(&task.poll().await.unwrap().unwrap()));
        }
        assert_eq!(got, ["tail", "fresh"]);
    }

    #[tokio::test]
    async fn bad_input_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.txt");
        let mut task = FileSourceTask::new(Arc::new(FileSourceConfig::new(&missing, "t")));
        let e = task.start(ctx(OffsetMap::new())).await.unwrap_err();
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("missing.txt"), "{e}");

        let path = dir.path().join("latin1.txt");
        std::fs::write(&path, b"ok\ncaf\xe9\n").unwrap();
        let mut task = FileSourceTask::new(Arc::new(
            FileSourceConfig::new(&path, "t").with_follow(false),
        ));
        task.start(ctx(OffsetMap::new())).await.unwrap();
        let e = task.poll().await.unwrap_err().to_string();
        assert!(e.contains("latin1.txt") && e.contains("byte 3"), "{e}");

        let config = FileSourceConfig::new(&path, "t")
            .with_follow(false)
            .with_invalid_utf8(InvalidUtf8::Replace);
        let mut task = FileSourceTask::new(Arc::new(config));
        task.start(ctx(OffsetMap::new())).await.unwrap();
        assert_eq!(
            lines(&task.poll().await.unwrap().unwrap()),
            ["ok", "caf\u{fffd}"]
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let p = connect_core::Properties::from_pairs([
            ("file", "/x"),
            ("topic", "t"),
            ("batch.size", "0"),
        ]);
        let e = FileSourceConfig::from_props(&p.root())
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch.size"), "{e}");
        let p = connect_core::Properties::from_pairs([("topic", "t")]);
        assert!(FileSourceConfig::from_props(&p.root())
            .unwrap_err()
            .to_string()
            .contains("`file`"));
    }
}
