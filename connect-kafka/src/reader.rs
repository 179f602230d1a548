//! Reading a topic from its beginning to its end, and
//! waiting for acknowledgements of state written to a topic: what the offset store and
//! the schema history share.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::DeliveryFuture;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::error::KafkaError;

/// Bound on each metadata or watermark request, and on a read making no progress.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads every committed message of `topic` that exists now, partition by partition in
/// order, folding each into `state` with `visit`; returns the state. Runs on a blocking
/// thread.
pub(crate) async fn read_to_end<T, F>(
    config: &KafkaConfig,
    topic: &str,
    max_partitions: Option<usize>,
    state: T,
    visit: F,
) -> Result<T, KafkaError>
where
    T: Send + 'static,
    F: FnMut(&mut T, &BorrowedMessage<'_>) -> Result<(), KafkaError> + Send + 'static,
{
    let consumer: BaseConsumer =
        config
            .consumer_config()
            .create()
            .map_err(|source| KafkaError::Client {
                client: "consumer",
                source,
            })?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        read_blocking(&consumer, &topic, max_partitions, state, visit)
    })
    .await
    .map_err(|e| KafkaError::Io(e.to_string()))?
}

fn read_blocking<T, F>(
    consumer: &BaseConsumer,
    topic: &str,
    max_partitions: Option<usize>,
    mut state: T,
    mut visit: F,
) -> Result<T, KafkaError>
where
    F: FnMut(&mut T, &BorrowedMessage<'_>) -> Result<(), KafkaError>,
{
    let read_error = |source| KafkaError::Read {
        topic: topic.to_owned(),
        source,
    };
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(read_error)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(read_error(ClientError::MetadataFetch(
            RDKafkaErrorCode::UnknownTopicOrPartition,
        )));
    }
    if let Some(max) = max_partitions.filter(|&max| partitions.len() > max) {
        return Err(KafkaError::TopicShape {
            topic: topic.to_owned(),
            detail: format!("has {} partitions, must have {max}", partitions.len()),
        });
    }
    // The end is where each partition reports EOF: tansu's ListOffsets counts record
    // batches, not records, so its watermarks cannot say where a partition ends.
    let mut assignment = TopicPartitionList::new();
    for &p in &partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .map_err(read_error)?;
    }
    consumer.assign(&assignment).map_err(read_error)?;
    let mut open = partitions;
    let mut last_progress = Instant::now();
    while !open.is_empty() {
        match consumer.poll(Duration::from_millis(100)) {
            None => {
                if last_progress.elapsed() > REQUEST_TIMEOUT {
                    return Err(read_error(ClientError::MessageConsumption(
                        RDKafkaErrorCode::OperationTimedOut,
                    )));
                }
            }
            Some(Err(ClientError::PartitionEOF(p))) => {
                open.retain(|&o| o != p);
                last_progress = Instant::now();
            }
            Some(Err(e)) => return Err(read_error(e)),
            Some(Ok(message)) => {
                last_progress = Instant::now();
                visit(&mut state, &message)?;
            }
        }
    }
    Ok(state)
}

/// Writes sent to a state topic and not yet known to be acknowledged.
#[derive(Default)]
pub(crate) struct PendingWrites(Mutex<Vec<DeliveryFuture>>);

impl PendingWrites {
    pub(crate) fn push(&self, delivery: DeliveryFuture) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(delivery);
    }

    /// Waits until the broker acknowledged every write so far (`acks=all`).
    pub(crate) async fn flush(&self, topic: &str) -> Result<(), KafkaError> {
        let pending = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for delivery in pending {
            let delivered = delivery.await.map_err(|_| KafkaError::Delivery {
                topic: topic.to_owned(),
                partition: -1,
                source: ClientError::Canceled,
            })?;
            delivered.map_err(|(source, message)| KafkaError::Delivery {
                topic: topic.to_owned(),
                partition: message.partition(),
                source,
            })?;
        }
        Ok(())
    }
}
