//! Writing a custom source connector: an in-memory "orders" table whose changes are
//! emitted as Debezium change events (`c`, `u`, `d` envelopes with a `source` block),
//! resumable from its offset, flattened by Debezium's `ExtractNewRecordState`, and handed
//! to a callback with a committer (Debezium's `handleBatch` + `markBatchFinished`).
//!
//! Delivery is at-least-once: the committer is marked finished after the batch is
//! handled, and only then may the offset (`{"seq": n}`) move past it.
//!
//! ```text
//! cargo run --example custom_connector
//! ```

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use connect_core::envelope::EnvelopeSchema;
use connect_core::transform::ExtractNewRecordState;
use connect_core::{
    async_trait, Engine, EventId, MemoryOffsetStore, Op, Record, Result, Schema, SchemaType,
    SourceBatch, SourceConnector, SourceOffset, SourcePartition, SourceTask, Struct, Task,
    TaskConfig, TaskContext, Value,
};

/// The connector: configuration plus the shared "database".
struct OrdersSource {
    changes: Arc<Vec<(Op, i32, &'static str)>>,
}

impl SourceConnector for OrdersSource {
    fn name(&self) -> &str {
        "orders"
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>> {
        Ok(vec![TaskConfig::new()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        let row = Schema::struct_builder()
            .name("shop.public.orders.Value")
            .optional()
            .field("id", Schema::required(SchemaType::Int32))
            .field("status", Schema::optional(SchemaType::String))
            .build();
        let source = Schema::struct_builder()
            .name("com.example.orders.Source")
            .field("connector", Schema::required(SchemaType::String))
            .field("seq", Schema::required(SchemaType::Int64))
            .build();
        let key = Schema::struct_builder()
            .name("shop.public.orders.Key")
            .field("id", Schema::required(SchemaType::Int32))
            .build();
        Box::new(OrdersTask {
            changes: self.changes.clone(),
            next: 0,
            envelope: EnvelopeSchema::new("shop.public.orders", row.clone(), source.clone())
                .expect("row schema is optional"),
            row,
            source,
            key,
        })
    }
}

struct OrdersTask {
    changes: Arc<Vec<(Op, i32, &'static str)>>,
    next: usize,
    envelope: EnvelopeSchema,
    row: Arc<Schema>,
    source: Arc<Schema>,
    key: Arc<Schema>,
}

fn partition() -> SourcePartition {
    SourcePartition::server("shop")
}

#[async_trait]
impl Task for OrdersTask {
    async fn start(&mut self, ctx: TaskContext) -> Result<()> {
        // Resume after the last committed change.
        self.next = ctx
            .offset(&partition())
            .and_then(|o| o.get("seq")?.as_u64())
            .unwrap_or(0) as usize;
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    fn version(&self) -> &str {
        "1.0"
    }
}

#[async_trait]
impl SourceTask for OrdersTask {
    async fn poll(&mut self) -> Result<Option<SourceBatch>> {
        let Some(&(op, id, status)) = self.changes.get(self.next) else {
            return Ok(None); // a finite source: the engine drains and stops
        };
        self.next += 1;
        let row = |s: &str| Struct::new(self.row.clone(), vec![Value::Int32(id), Value::string(s)]);
        let (before, after) = match op {
            Op::Create => (None, Some(row(status)?)),
            Op::Update => (Some(row("?")?), Some(row(status)?)),
            _ => (Some(row(status)?), None),
        };
        let source = Struct::new(
            self.source.clone(),
            vec![Value::static_str("orders"), Value::Int64(self.next as i64)],
        )?;
        let value = self
            .envelope
            .event(op, before, after, source, None, SystemTime::now());
        let key = Value::Struct(Struct::new(self.key.clone(), vec![Value::Int32(id)])?);
        let record = Record::new(
            Arc::from("shop.public.orders"),
            Some(self.envelope.schema().clone()),
            value,
        )
        .with_key(Some(self.key.clone()), key)
        .with_event_id(EventId::from_parts(&[
            b"shop",
            &(self.next as u64).to_le_bytes(),
        ]));
        Ok(Some(SourceBatch::new(
            vec![record],
            partition(),
            SourceOffset::single("seq", self.next as u64),
        )))
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let changes = Arc::new(vec![
        (Op::Create, 1, "new"),
        (Op::Create, 2, "new"),
        (Op::Update, 1, "paid"),
        (Op::Delete, 2, "new"),
    ]);
    let offsets = MemoryOffsetStore::new();
    let cache: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = cache.clone();
    let engine = Engine::builder()
        .name("orders-cache")
        .source(OrdersSource { changes })
        .transform("unwrap", ExtractNewRecordState::new())
        .offsets(offsets.clone())
        .into_callback(move |records: Vec<Record>, committer| {
            let seen = seen.clone();
            async move {
                for r in &records {
                    let line = match r.value.as_struct() {
                        Some(row) => format!("upsert {:?}", row.values()),
                        None => format!("delete key {:?}", r.key.as_struct().map(Struct::values)),
                    };
                    println!("{line}");
                    seen.lock().expect("not poisoned").push(line);
                }
                committer.mark_batch_finished();
                Ok(())
            }
        })
        .start()
        .await?;
    let report = engine.wait().await?;
    println!(
        "handled {} change(s); committed offset {:?}",
        cache.lock().expect("not poisoned").len(),
        report.pipelines[0].offsets.get(&partition())
    );
    Ok(())
}
