//! Helpers shared by the Kafka test binaries.

#![allow(dead_code)] // each test binary uses its own share

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

pub const DEADLINE: Duration = Duration::from_secs(120);

pub fn bootstrap() -> String {
    std::env::var("CONNECT_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A name no other test or earlier run uses (tansu keeps topics until it restarts).
pub fn unique(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{what}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let results = admin
        .create_topics(
            [&NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// A message read from the dead-letter topic: key, value and headers as text.
pub struct DeadLetter {
    pub value: String,
    pub headers: HashMap<String, String>,
}

pub fn read_dead_letters(bootstrap: &str, topic: &str, count: usize) -> Vec<DeadLetter> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} dead letters",
            out.len()
        );
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.unwrap();
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), text(h.value)))
                    .collect()
            })
            .unwrap_or_default();
        out.push(DeadLetter {
            value: text(m.payload()),
            headers,
        });
    }
    out
}

/// A tansu of this test's own on a free port (memory storage), so that stopping it
/// disturbs no other test. Killed on drop.
pub struct PrivateBroker {
    child: Child,
    pub bootstrap: String,
}

impl PrivateBroker {
    pub fn start() -> PrivateBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts (scripts/services.sh installs it)");
        let bootstrap = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&bootstrap).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {bootstrap}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateBroker { child, bootstrap }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} the broker");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu_binary() -> std::path::PathBuf {
    if let Ok(path) = std::env::var("CONNECT_TANSU") {
        return path.into();
    }
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo")
        });
    let installed = home.join("bin/tansu");
    if installed.exists() {
        installed
    } else {
        "tansu".into()
    }
}
