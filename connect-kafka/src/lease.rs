//! One running instance per pipeline: a lease held through Kafka's group protocol.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use connect_core::Error;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;
use tokio::sync::watch;

use crate::config::{KafkaConfig, TopicCreation, BROKER_DEFAULT_REPLICATION};
use crate::error::KafkaError;
use crate::topics::{admin_client, ensure_topic};

/// Tells the holder whether the lease's one partition is assigned to it.
struct LeaseContext {
    held: watch::Sender<bool>,
}

impl ClientContext for LeaseContext {}

impl ConsumerContext for LeaseContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Cooperative rebalances are incremental: an empty change leaves the lease as it is.
        match rebalance {
            Rebalance::Assign(assigned) if assigned.count() > 0 => {
                self.held.send_replace(true);
            }
            Rebalance::Revoke(revoked) if revoked.count() > 0 => {
                self.held.send_replace(false);
            }
            Rebalance::Error(_) => {
                self.held.send_replace(false);
            }
            Rebalance::Assign(_) | Rebalance::Revoke(_) => {}
        }
    }
}

/// A lease that lets one instance of a pipeline run at a time, as Kafka Connect's
/// workers share work: every instance joins the consumer group `connect-lease.<name>` on
/// a one-partition topic of the same name, and the one the group assigns the partition
/// to holds the lease. Another instance waits in [`KafkaLease::acquire`] until the holder
/// leaves or dies (after the group's `session.timeout.ms`, settable with
/// `consumer.session.timeout.ms`), and then resumes from the stored offsets.
///
/// The holder must stop its pipeline when [`KafkaLease::lost`] resolves (a pause longer
/// than the session timeout hands the lease to another instance). A holder paused that
/// long may not have noticed yet when it resumes: open its offset store with
/// [`KafkaOffsetStore::fenced`](crate::KafkaOffsetStore::fenced), so that it refuses to
/// write once the lease is lost and what it wrote before noticing never overrides the
/// new holder's offsets.
pub struct KafkaLease {
    held: watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
    topic: String,
    name: String,
}

impl std::fmt::Debug for KafkaLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLease")
            .field("topic", &self.topic)
            .field("held", &*self.held.borrow())
            .finish()
    }
}

impl KafkaLease {
    /// Waits until this instance holds the lease of pipeline `name`.
    pub async fn acquire(config: &KafkaConfig, name: &str) -> Result<KafkaLease, Error> {
        config.validate()?;
        let topic = format!("connect-lease.{name}");
        let admin = admin_client(config)?;
        let shape = TopicCreation {
            partitions: 1,
            replication_factor: BROKER_DEFAULT_REPLICATION,
            configs: Default::default(),
        };
        ensure_topic(config, &admin, &topic, &shape).await?;
        let (tx, mut held) = watch::channel(false);
        let mut client = config.consumer_config();
        // The lease topic holds no data: no end to report, no hurry to fetch.
        client
            .set("group.id", &topic)
            .set("enable.partition.eof", "false")
            // The holder keeps the partition when another instance joins.
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("fetch.wait.max.ms", "500");
        let consumer: BaseConsumer<LeaseContext> = client
            .create_with_context(LeaseContext { held: tx })
            .map_err(|source| KafkaError::Client {
                client: "lease consumer",
                source,
            })?;
        consumer
            .subscribe(&[&topic])
            .map_err(|source| KafkaError::Read {
                topic: topic.clone(),
                source,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let keep_polling = stop.clone();
        // Polling serves the group protocol's callbacks; the lease topic holds no data.
        std::thread::Builder::new()
            .name("kafka-lease".into())
            .spawn(move || {
                while !keep_polling.load(Ordering::Relaxed) {
                    let _ = consumer.poll(Duration::from_millis(100));
                }
                consumer.unsubscribe();
            })
            .map_err(|e| Error::fatal("kafka", e))?;
        held.wait_for(|h| *h)
            .await
            .map_err(|e| Error::fatal("kafka", e))?;
        Ok(KafkaLease {
            held,
            stop,
            topic,
            name: name.to_owned(),
        })
    }

    /// Resolves when this instance no longer holds the lease.
    pub async fn lost(&self) {
        let mut held = self.held.clone();
        let _ = held.wait_for(|h| !*h).await;
    }

    /// Whether this instance holds the lease now.
    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }

    /// The pipeline's name.
    pub fn pipeline(&self) -> &str {
        &self.name
    }

    /// A view of whether the lease is held, for writers that must stop writing with it.
    pub(crate) fn guard(&self) -> LeaseGuard {
        LeaseGuard {
            held: self.held.clone(),
            topic: self.topic.clone(),
        }
    }
}

/// Whether a lease is still held, checked before each write of a fenced store.
#[derive(Clone)]
pub(crate) struct LeaseGuard {
    held: watch::Receiver<bool>,
    topic: String,
}

impl LeaseGuard {
    pub(crate) fn check(&self) -> Result<(), KafkaError> {
        // A closed channel: the lease's consumer is gone (the lease was dropped).
        if *self.held.borrow() && self.held.has_changed().is_ok() {
            Ok(())
        } else {
            Err(KafkaError::LeaseLost {
                lease: self.topic.clone(),
            })
        }
    }
}

impl Drop for KafkaLease {
    /// Leaves the group, so that the next instance takes over at once.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
