//! `snapshot.max.threads` > 1: worker connections read tables in parallel, each inside a
//! REPEATABLE READ transaction that imports the snapshot of the main one, so all of them
//! see the same consistent state. Rows come back through a bounded channel (memory stays
//! bounded by the engine's back-pressure); the task marks the first, the last of each
//! table and the very last record as a sequential snapshot does.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use connect_core::{Error, Record, Value};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::PostgresConfig;
use crate::source::{connect, copy_rows, pg_err, read_record, remark};
use crate::table::{ColumnDef, SourceInfo, TableSchema};

/// A table to read: its schema and catalog columns.
pub(crate) type TableJob = (Arc<TableSchema>, Vec<ColumnDef>);

/// What a worker reports.
enum Chunk {
    /// Rows of a table, in order (the table's last row is held back).
    Rows(Vec<Record>),
    /// A table is read; its last row, if it had any.
    TableDone(Option<Record>),
}

/// The values every snapshot event's `source` block shares.
#[derive(Clone)]
pub(crate) struct SnapshotSource {
    pub server: Value,
    pub db: Value,
    pub ts_us: i64,
    pub tx_id: i64,
    pub sequence: Value,
    pub lsn: u64,
}

impl SnapshotSource {
    /// The `source` block's values of a snapshot event marked `marker`.
    pub(crate) fn info(&self, marker: &'static str) -> SourceInfo<'_> {
        SourceInfo {
            server: &self.server,
            db: &self.db,
            ts_us: self.ts_us,
            snapshot: marker,
            sequence: self.sequence.clone(),
            tx_id: Some(self.tx_id),
            lsn: Some(self.lsn),
            transaction: None,
        }
    }
}

/// Workers reading tables and the state of merging their output.
pub(crate) struct ParallelSnapshot {
    rx: mpsc::Receiver<Result<Chunk, Error>>,
    workers: Vec<JoinHandle<()>>,
    tables_left: usize,
    /// The last row of the most recently finished table: `last_in_data_collection`, or
    /// `last` if no other table finishes after it.
    held: Option<Record>,
    first_sent: bool,
}

impl ParallelSnapshot {
    /// Starts `threads` workers on `tables`, importing snapshot `snapshot_name`.
    pub(crate) fn start(
        config: Arc<PostgresConfig>,
        snapshot_name: String,
        tables: Vec<TableJob>,
        threads: usize,
        source: SnapshotSource,
    ) -> ParallelSnapshot {
        let tables_left = tables.len();
        let queue = Arc::new(Mutex::new(tables));
        let (tx, rx) = mpsc::channel(threads * 2);
        let workers = (0..threads.min(tables_left.max(1)))
            .map(|_| {
                let (config, name, queue, tx, source) = (
                    config.clone(),
                    snapshot_name.clone(),
                    queue.clone(),
                    tx.clone(),
                    source.clone(),
                );
                tokio::spawn(async move {
                    if let Err(e) = work(&config, &name, &queue, &tx, &source).await {
                        let _ = tx.send(Err(e)).await;
                    }
                })
            })
            .collect();
        ParallelSnapshot {
            rx,
            workers,
            tables_left,
            held: None,
            first_sent: false,
        }
    }

    /// The next records to emit; `None` once every table is read (the held last record
    /// has then been returned, marked `last`).
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<Record>>, Error> {
        loop {
            if self.tables_left == 0 {
                return Ok(self.held.take().map(|r| vec![remark(r, "last")]));
            }
            let chunk = self.rx.recv().await.ok_or_else(|| {
                Error::retryable("postgres", "a snapshot worker stopped unexpectedly")
            })??;
            let mut records = match chunk {
                Chunk::Rows(records) => records,
                Chunk::TableDone(last) => {
                    self.tables_left -= 1;
                    let previous = match last {
                        Some(last) => self.held.replace(last),
                        None => None,
                    };
                    previous
                        .map(|r| remark(r, "last_in_data_collection"))
                        .into_iter()
                        .collect()
                }
            };
            if records.is_empty() {
                continue;
            }
            if !std::mem::replace(&mut self.first_sent, true) {
                let first = records.remove(0);
                records.insert(0, remark(first, "first"));
            }
            return Ok(Some(records));
        }
    }
}

impl Drop for ParallelSnapshot {
    fn drop(&mut self) {
        for w in &self.workers {
            w.abort();
        }
    }
}

async fn work(
    config: &PostgresConfig,
    snapshot_name: &str,
    queue: &Mutex<Vec<TableJob>>,
    tx: &mpsc::Sender<Result<Chunk, Error>>,
    source: &SnapshotSource,
) -> Result<(), Error> {
    let client = connect(config).await?;
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{snapshot_name}';"
        ))
        .await
        .map_err(|e| pg_err("a snapshot worker cannot import the snapshot", e))?;
    let info = source.info("true");
    loop {
        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some((table, columns)) = job else {
            break;
        };
        let stream = copy_rows(&client, &table, &columns)
            .await
            .map_err(|e| pg_err(&format!("cannot read {}.{}", table.schema, table.table), e))?;
        futures::pin_mut!(stream);
        let block = table.source_block(&info)?;
        let mut rows = Vec::with_capacity(config.fetch_size.min(4096));
        let mut held: Option<Record> = None;
        // Read once per chunk (see `event_with_source`).
        let mut processed_at = SystemTime::now();
        while let Some(row) = stream.next().await {
            let row = row.map_err(|e| {
                pg_err(
                    &format!("snapshot of {}.{} failed", table.schema, table.table),
                    e,
                )
            })?;
            rows.extend(held.replace(read_record(
                &table,
                row,
                &info,
                block.clone(),
                processed_at,
            )?));
            if rows.len() >= config.fetch_size {
                processed_at = SystemTime::now();
                let full =
                    std::mem::replace(&mut rows, Vec::with_capacity(config.fetch_size.min(4096)));
                if tx.send(Ok(Chunk::Rows(full))).await.is_err() {
                    return Ok(());
                }
            }
        }
        if !rows.is_empty() && tx.send(Ok(Chunk::Rows(rows))).await.is_err() {
            return Ok(());
        }
        if tx.send(Ok(Chunk::TableDone(held))).await.is_err() {
            return Ok(());
        }
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| pg_err("a snapshot worker cannot end its transaction", e))
}
