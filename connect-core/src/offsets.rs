//! Offset stores: where committed source positions live between runs.
//!
//! Keys are Kafka Connect's: `["<connector name>",<source partition>]`, where the connector
//! name is the pipeline's name (the engine's name for a single-pipeline engine), e.g.
//! `["orders-cache",{"server":"shop"}]`; values are the connector's offset JSON, so the
//! stores are transports for Debezium's own offsets.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::record::{SourceOffset, SourcePartition};

/// Committed offsets of one pipeline, by source partition.
pub type OffsetMap = HashMap<SourcePartition, SourceOffset>;

/// Durable storage of committed offsets.
///
/// The engine calls `load` once per pipeline at start, then `write` followed by `flush`
/// from one task at a time on each commit; offsets reach the source only after `flush`
/// returned `Ok`. Implementations must not lose a flushed write on a crash, and must
/// report unreadable state as an error rather than as "no offsets".
#[async_trait]
pub trait OffsetStore: Send + Sync {
    /// The committed offsets of the pipeline `namespace` (Kafka Connect's connector name).
    async fn load(&self, namespace: &str) -> Result<OffsetMap>;
    /// Stages offsets of `namespace` (not durable until `flush`).
    async fn write(
        &self,
        namespace: &str,
        offsets: &[(SourcePartition, SourceOffset)],
    ) -> Result<()>;
    /// Makes every staged write durable.
    async fn flush(&self) -> Result<()>;
}

/// Kafka Connect's offset key for a connector (pipeline) name and partition.
pub fn connect_key(namespace: &str, partition: &SourcePartition) -> String {
    let mut key = String::with_capacity(namespace.len() + partition.as_json().len() + 8);
    key.push('[');
    key.push_str(&serde_json::to_string(namespace).expect("a string serialises"));
    key.push(',');
    key.push_str(partition.as_json());
    key.push(']');
    key
}

/// Parses a Kafka Connect offset key back into its connector name and partition; `None`
/// for anything else.
pub fn parse_connect_key(key: &str) -> Option<(String, SourcePartition)> {
    let parsed: Json = serde_json::from_str(key).ok()?;
    let [Json::String(namespace), Json::Object(partition)] = parsed.as_array()?.as_slice() else {
        return None;
    };
    Some((namespace.clone(), SourcePartition::from_map(partition)))
}

type Entries = BTreeMap<String, Map<String, Json>>;

fn select(entries: &Entries, namespace: &str) -> OffsetMap {
    entries
        .iter()
        .filter_map(|(k, v)| {
            let (e, p) = parse_connect_key(k)?;
            (e == namespace).then(|| (p, SourceOffset::new(v.clone())))
        })
        .collect()
}

fn stage(entries: &mut Entries, namespace: &str, offsets: &[(SourcePartition, SourceOffset)]) {
    for (p, o) in offsets {
        entries.insert(connect_key(namespace, p), o.map().clone());
    }
}

/// Offsets in memory: lost when the process ends. Clones share the same store, so a test
/// or an application can read what the engine committed.
#[derive(Debug, Clone, Default)]
pub struct MemoryOffsetStore {
    entries: Arc<Mutex<Entries>>,
}

impl MemoryOffsetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The offsets currently held for the pipeline `namespace`.
    pub fn snapshot(&self, namespace: &str) -> OffsetMap {
        select(
            &self.entries.lock().unwrap_or_else(|p| p.into_inner()),
            namespace,
        )
    }
}

#[async_trait]
impl OffsetStore for MemoryOffsetStore {
    async fn load(&self, namespace: &str) -> Result<OffsetMap> {
        Ok(self.snapshot(namespace))
    }

    async fn write(
        &self,
        namespace: &str,
        offsets: &[(SourcePartition, SourceOffset)],
    ) -> Result<()> {
        stage(
            &mut self.entries.lock().unwrap_or_else(|p| p.into_inner()),
            namespace,
            offsets,
        );
        Ok(())
    }

    async fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// Offsets in a JSON file: `{"[\"pipeline\",{\"server\":\"shop\"}]": {"lsn": ...}, ...}`.
///
/// Each flush writes a temporary file, fsyncs it, renames it over the old one and fsyncs
/// the directory, so a crash leaves either the old or the new offsets, never a torn file.
/// A file that exists but cannot be read or parsed is an error naming it: the engine never
/// silently starts from zero.
#[derive(Debug, Clone)]
pub struct FileOffsetStore {
    path: Arc<PathBuf>,
    entries: MemoryOffsetStore,
    /// Serialises flushes so an older snapshot never overwrites a newer one.
    flush_lock: Arc<tokio::sync::Mutex<()>>,
}

impl FileOffsetStore {
    /// Opens (or prepares to create) the offsets file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let entries = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<Entries>(&bytes).map_err(|e| Error::CorruptFile {
                    what: "offsets",
                    path: path.clone(),
                    detail: e.to_string(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Entries::new(),
            Err(e) => return Err(Error::io("cannot read offsets file", &path, e)),
        };
        for key in entries.keys() {
            if parse_connect_key(key).is_none() {
                return Err(Error::CorruptFile {
                    what: "offsets",
                    path,
                    detail: format!("key `{key}` is not [\"<pipeline>\",{{<partition>}}]"),
                });
            }
        }
        Ok(FileOffsetStore {
            path: Arc::new(path),
            entries: MemoryOffsetStore {
                entries: Arc::new(Mutex::new(entries)),
            },
            flush_lock: Arc::default(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl OffsetStore for FileOffsetStore {
    async fn load(&self, namespace: &str) -> Result<OffsetMap> {
        self.entries.load(namespace).await
    }

    async fn write(
        &self,
        namespace: &str,
        offsets: &[(SourcePartition, SourceOffset)],
    ) -> Result<()> {
        self.entries.write(namespace, offsets).await
    }

    async fn flush(&self) -> Result<()> {
        let _serial = self.flush_lock.lock().await;
        let bytes = serde_json::to_vec_pretty(
            &*self
                .entries
                .entries
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
        .expect("offsets serialise");
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
            .await
            .map_err(|e| {
                Error::io(
                    "offsets flush task failed for",
                    &*self.path,
                    std::io::Error::other(e),
                )
            })?
    }
}

/// Writes `bytes` to `path` atomically and durably: temp file, fsync, rename, fsync dir.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io("cannot write", &tmp, e))?;
    f.sync_all()
        .map_err(|e| Error::io("cannot fsync", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot rename temp file over", path, e))?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("cannot fsync directory", &dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(pos: i64) -> Vec<(SourcePartition, SourceOffset)> {
        vec![(
            SourcePartition::server("shop"),
            SourceOffset::single("lsn", pos),
        )]
    }

    #[tokio::test]
    async fn file_store_round_trips_in_connect_key_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.json");
        let store = FileOffsetStore::open(&path).unwrap();
        store.write("e1", &offsets(10)).await.unwrap();
        store.write("e2", &offsets(99)).await.unwrap();
        store.flush().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(r#""[\"e1\",{\"server\":\"shop\"}]""#),
            "{text}"
        );
        let reopened = FileOffsetStore::open(&path).unwrap();
        let e1 = reopened.load("e1").await.unwrap();
        assert_eq!(
            e1[&SourcePartition::server("shop")].get("lsn"),
            Some(&Json::from(10))
        );
        assert_eq!(reopened.load("e2").await.unwrap().len(), 1);
        assert!(reopened.load("e3").await.unwrap().is_empty());
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, b"{ not json").unwrap();
        let e = FileOffsetStore::open(&path).unwrap_err();
        assert!(matches!(e, Error::CorruptFile { .. }));
        assert!(e.to_string().contains("bad.json"), "{e}");
        std::fs::write(&path, br#"{"plain-key":{}}"#).unwrap();
        assert!(FileOffsetStore::open(&path).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: reading fails with a non-NotFound error.
        let path = dir.path().join("dir.json");
        std::fs::create_dir(&path).unwrap();
        let e = FileOffsetStore::open(&path).unwrap_err();
        assert!(e.to_string().contains("dir.json"), "{e}");
    }
}
