//! The append sink: one converted record value per line; `flush` fsyncs.

use std::path::PathBuf;
use std::sync::Arc;

use connect_core::properties::Scope;
use connect_core::{
    async_trait, Converter, Error, JsonConverter, OffsetMap, Record, SinkConnector, SinkTask, Task,
    TaskConfig, TaskContext,
};
use tokio::io::AsyncWriteExt;

use crate::error::FileError;

/// Bytes buffered before they are written (not synced) to the file.
const WRITE_THRESHOLD: usize = 1 << 20;

/// Configuration of [`FileSink`].
#[derive(Clone)]
pub struct FileSinkConfig {
    file: PathBuf,
    converter: Arc<dyn Converter>,
    topics: Option<Vec<String>>,
}

impl std::fmt::Debug for FileSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSinkConfig")
            .field("file", &self.file)
            .field("topics", &self.topics)
            .finish()
    }
}

impl FileSinkConfig {
    /// Appends to `file`, values as Debezium JSON by default.
    pub fn new(file: impl Into<PathBuf>) -> Self {
        FileSinkConfig {
            file: file.into(),
            converter: Arc::new(JsonConverter::default()),
            topics: None,
        }
    }

    /// The value converter (e.g. `StringConverter` to copy lines as they are).
    pub fn with_converter(self, converter: impl Converter + 'static) -> Self {
        self.with_converter_arc(Arc::new(converter))
    }

    /// The value converter, already shared.
    pub fn with_converter_arc(mut self, converter: Arc<dyn Converter>) -> Self {
        self.converter = converter;
        self
    }

    /// Accept only these topics (`topics`); a record of another topic is an error.
    pub fn with_topics(mut self, topics: Vec<String>) -> Self {
        self.topics = Some(topics);
        self
    }

    /// Reads `file` and `topics`.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let mut c = Self::new(scope.require("file")?);
        let topics = scope.list("topics");
        if !topics.is_empty() {
            c.topics = Some(topics.into_iter().map(str::to_owned).collect());
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.file.as_os_str().is_empty() {
            return Err(Error::config("file", "must not be empty"));
        }
        Ok(())
    }
}

/// Kafka's file sink.
#[derive(Debug, Clone)]
pub struct FileSink {
    config: Arc<FileSinkConfig>,
}

impl FileSink {
    /// A sink for a validated configuration.
    pub fn new(config: FileSinkConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(FileSink {
            config: Arc::new(config),
        })
    }
}

impl SinkConnector for FileSink {
    fn name(&self) -> &str {
        "file-sink"
    }

    fn validate(&self) -> Result<(), Error> {
        self.config.validate()
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, Error> {
        Ok(vec![TaskConfig::new()])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(FileSinkTask {
            config: self.config.clone(),
            file: None,
            buf: Vec::with_capacity(WRITE_THRESHOLD),
        })
    }
}

struct FileSinkTask {
    config: Arc<FileSinkConfig>,
    file: Option<tokio::fs::File>,
    buf: Vec<u8>,
}

impl FileSinkTask {
    fn write_err(&self, source: std::io::Error) -> FileError {
        FileError::Write {
            path: self.config.file.clone(),
            source,
        }
    }

    async fn write_out(&mut self) -> Result<(), Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::fatal("file-sink", "put before start"))?;
        let r = file.write_all(&self.buf).await;
        r.map_err(|e| self.write_err(e))?;
        self.buf.clear();
        Ok(())
    }
}

/// Cuts a last line without its newline: a write torn by a crash, never flushed.
fn repair_torn_tail(path: &std::path::Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk[..n])?;
        if let Some(i) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep != len {
                tracing::warn!(file = %path.display(), cut = len - keep, "cutting a torn last line (crash during write)");
                f.set_len(keep)?;
                f.sync_all()?;
            }
            return Ok(());
        }
        end = start;
    }
    if len > 0 {
        tracing::warn!(file = %path.display(), "cutting a torn first line (crash during write)");
        f.set_len(0)?;
        f.sync_all()?;
    }
    Ok(())
}

#[async_trait]
impl Task for FileSinkTask {
    async fn start(&mut self, _ctx: TaskContext) -> Result<(), Error> {
        let path = self.config.file.clone();
        let repair_path = path.clone();
        tokio::task::spawn_blocking(move || repair_torn_tail(&repair_path))
            .await
            .map_err(|e| Error::fatal("file-sink", e))?
            .map_err(|source| FileError::Open {
                path: path.clone(),
                source,
            })?;
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|source| FileError::Open { path, source })?;
        self.file = Some(file);
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), Error> {
        // Unflushed lines are not committed: they come again after a restart.
        self.file = None;
        Ok(())
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }
}

#[async_trait]
impl SinkTask for FileSinkTask {
    async fn put(&mut self, records: &[Record]) -> Result<(), Error> {
        for r in records {
            if let Some(topics) = &self.config.topics {
                if !topics.iter().any(|t| **t == *r.topic) {
                    return Err(FileError::UnexpectedTopic {
                        topic: r.topic.to_string(),
                        path: self.config.file.clone(),
                    }
                    .into());
                }
            }
            if !self.config.converter.serialize(
                &r.topic,
                r.value_schema.as_ref(),
                &r.value,
                &mut self.buf,
            )? {
                self.buf.extend_from_slice(b"null");
            }
            self.buf.push(b'\n');
        }
        if self.buf.len() >= WRITE_THRESHOLD {
            self.write_out().await?;
        }
        Ok(())
    }

    async fn flush(&mut self, _offsets: &OffsetMap) -> Result<(), Error> {
        self.write_out().await?;
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| Error::fatal("file-sink", "flush before start"))?;
        let r = file.sync_data().await;
        r.map_err(|e| self.write_err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_core::{StringConverter, Value};

    fn ctx() -> TaskContext {
        let (_tx, rx) = tokio::sync::watch::channel(Arc::new(OffsetMap::new()));
        TaskContext {
            engine: Arc::from("t"),
            pipeline: Arc::from("t"),
            task_id: 0,
            config: TaskConfig::new(),
            offsets: OffsetMap::new(),
            committed: rx,
            commit: Default::default(),
        }
    }

    #[tokio::test]
    async fn appends_lines_and_cuts_a_torn_tail_on_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, "kept\ntorn li").unwrap();
        let sink =
            FileSink::new(FileSinkConfig::new(&path).with_converter(StringConverter)).unwrap();
        let mut task = sink.create_task();
        task.start(ctx()).await.unwrap();
        let recs: Vec<Record> = ["a", "b"]
            .iter()
            .map(|s| Record::new(Arc::from("t"), None, Value::string(s)))
            .collect();
        task.put(&recs).await.unwrap();
        task.put(&[Record::new(Arc::from("t"), None, Value::Null)])
            .await
            .unwrap();
        task.flush(&OffsetMap::new()).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "kept\na\nb\nnull\n"
        );
    }

    #[tokio::test]
    async fn unlisted_topic_is_an_error_and_unwritable_path_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let sink = FileSink::new(FileSinkConfig::new(&path).with_topics(vec!["a".into()])).unwrap();
        let mut task = sink.create_task();
        task.start(ctx()).await.unwrap();
        let e = task
            .put(&[Record::new(Arc::from("b"), None, Value::string("x"))])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("`b`"), "{e}");

        let bad =
            FileSink::new(FileSinkConfig::new(dir.path().join("no/such/dir/out.txt"))).unwrap();
        let e = bad
            .create_task()
            .start(ctx())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no/such/dir/out.txt"), "{e}");
    }
}
