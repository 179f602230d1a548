//! Schema history: the DDL a log-based source has seen, with its position, so a restart
//! replaying older log reads each row with the schema of its time. Records are Debezium's
//! history records (`source`, `position`, `ts_ms`, `databaseName`, `ddl`, `tableChanges`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};

/// One history record, serialised with Debezium's field names and order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// Source partition, e.g. `{"server":"shop"}`.
    pub source: Map<String, Json>,
    /// Source offset at which the DDL was seen.
    pub position: Map<String, Json>,
    /// When it was recorded (ms since the epoch).
    pub ts_ms: i64,
    /// Database the statement ran in.
    #[serde(rename = "databaseName", default)]
    pub database_name: String,
    /// Schema the statement ran in, where the database has schemas.
    #[serde(
        rename = "schemaName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub schema_name: Option<String>,
    /// The DDL statement(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ddl: Option<String>,
    /// Debezium's `tableChanges` (table definitions after the statement).
    #[serde(rename = "tableChanges", default)]
    pub table_changes: Vec<Json>,
}

/// Durable, append-only storage of [`HistoryRecord`]s.
///
/// A source calls `recover` once at start (all records, in append order), then `append`
/// for each DDL before it emits any row that depends on it, and `flush` before the engine
/// may commit an offset past that DDL. Unreadable history is an error, never an empty one.
#[async_trait]
pub trait SchemaHistory: Send + Sync {
    /// Every record, in append order.
    async fn recover(&self) -> Result<Vec<HistoryRecord>>;
    /// Appends a record (durable after `flush`).
    async fn append(&self, record: HistoryRecord) -> Result<()>;
    /// Makes every appended record durable.
    async fn flush(&self) -> Result<()>;
    /// Whether any record exists (a missing history with existing offsets needs recovery).
    async fn exists(&self) -> Result<bool> {
        Ok(!self.recover().await?.is_empty())
    }
}

/// History in memory; clones share the records.
#[derive(Debug, Clone, Default)]
pub struct MemorySchemaHistory {
    records: Arc<Mutex<Vec<HistoryRecord>>>,
}

impl MemorySchemaHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SchemaHistory for MemorySchemaHistory {
    async fn recover(&self) -> Result<Vec<HistoryRecord>> {
        Ok(self
            .records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    async fn append(&self, record: HistoryRecord) -> Result<()> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// History in a file of one JSON record per line, as Debezium's `FileSchemaHistory` keeps
/// it. `flush` fsyncs. On open, a last line without its newline is a write torn by a crash
/// (it was never flushed, so no offset depends on it) and is cut off with a warning; any
/// complete line that does not parse is an error naming the file and line.
#[derive(Debug, Clone)]
pub struct FileSchemaHistory {
    path: Arc<PathBuf>,
    pending: Arc<Mutex<Vec<u8>>>,
    io_lock: Arc<tokio::sync::Mutex<()>>,
}

impl FileSchemaHistory {
    /// Opens (or prepares to create) the history file, repairing a torn last line.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        match std::fs::read(&path) {
            Ok(bytes) => {
                if let Some(last_newline) = bytes.iter().rposition(|&b| b == b'\n') {
                    if last_newline + 1 != bytes.len() {
                        truncate_torn_tail(&path, last_newline as u64 + 1)?;
                    }
                } else if !bytes.is_empty() {
                    truncate_torn_tail(&path, 0)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot read schema history file", &path, e)),
        }
        let history = FileSchemaHistory {
            path: Arc::new(path),
            pending: Arc::default(),
            io_lock: Arc::default(),
        };
        history.read_all()?;
        Ok(history)
    }

    fn read_all(&self) -> Result<Vec<HistoryRecord>> {
        let text = match std::fs::read_to_string(&*self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot read schema history file", &*self.path, e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| {
                serde_json::from_str(l).map_err(|e| Error::CorruptFile {
                    what: "schema history",
                    path: (*self.path).clone(),
                    detail: format!("line {}: {e}", n + 1),
                })
            })
            .collect()
    }
}

fn truncate_torn_tail(path: &Path, keep: u64) -> Result<()> {
    tracing::warn!(path = %path.display(), keep, "cutting a torn last line of the schema history (crash during write)");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("cannot open schema history file", path, e))?;
    f.set_len(keep)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io("cannot repair schema history file", path, e))
}

#[async_trait]
impl SchemaHistory for FileSchemaHistory {
    async fn recover(&self) -> Result<Vec<HistoryRecord>> {
        let _io = self.io_lock.lock().await;
        self.read_all()
    }

    async fn append(&self, record: HistoryRecord) -> Result<()> {
        let mut line = serde_json::to_vec(&record).expect("history record serialises");
        line.push(b'\n');
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(&line);
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        let _io = self.io_lock.lock().await;
        let bytes = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if bytes.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&*path)
                .map_err(|e| Error::io("cannot open schema history file", &*path, e))?;
            f.write_all(&bytes)
                .and_then(|_| f.sync_data())
                .map_err(|e| Error::io("cannot write schema history file", &*path, e))
        })
        .await
        .map_err(|e| {
            Error::io(
                "schema history flush task failed for",
                &*self.path,
                std::io::Error::other(e),
            )
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ddl: &str) -> HistoryRecord {
        let mut source = Map::new();
        source.insert("server".into(), "shop".into());
        let mut position = Map::new();
        position.insert("file".into(), "mariadb-bin.000001".into());
        position.insert("pos".into(), 4.into());
        HistoryRecord {
            source,
            position,
            ts_ms: 1,
            database_name: "inventory".into(),
            schema_name: None,
            ddl: Some(ddl.into()),
            table_changes: vec![],
        }
    }

    #[tokio::test]
    async fn file_history_round_trips_in_debezium_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let h = FileSchemaHistory::open(&path).unwrap();
        h.append(record("CREATE TABLE a (id INT)")).await.unwrap();
        h.append(record("ALTER TABLE a ADD COLUMN b INT"))
            .await
            .unwrap();
        h.flush().await.unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(
            first.starts_with(r#"{"source":{"server":"shop"},"position":{"file":"mariadb-bin.000001","pos":4},"ts_ms":1,"databaseName":"inventory","ddl":"CREATE TABLE a (id INT)","tableChanges":[]}"#),
            "{first}"
        );
        let again = FileSchemaHistory::open(&path)
            .unwrap()
            .recover()
            .await
            .unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(
            again[1].ddl.as_deref(),
            Some("ALTER TABLE a ADD COLUMN b INT")
        );
    }

    #[tokio::test]
    async fn torn_tail_is_cut_but_corrupt_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let good = serde_json::to_string(&record("CREATE TABLE a (id INT)")).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"source\":{{\"ser")).unwrap();
        let h = FileSchemaHistory::open(&path).unwrap();
        assert_eq!(h.recover().await.unwrap().len(), 1);
        std::fs::write(&path, format!("{good}\nnot json\n{good}\n")).unwrap();
        let e = FileSchemaHistory::open(&path).unwrap_err().to_string();
        assert!(e.contains("h.jsonl") && e.contains("line 2"), "{e}");
    }
}
