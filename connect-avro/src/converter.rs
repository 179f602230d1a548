//! The Avro converter: Confluent's wire format (magic byte 0, the schema's registry id as
//! a big-endian int32, the Avro binary body) with the schema registered per subject.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apache_avro::reader::datum::GenericDatumReader;
use connect_core::convert::conversion_error;
use connect_core::properties::Scope;
use connect_core::{Converter, Error, Schema, Value};

use crate::error::AvroError;
use crate::registry::{RegistryClient, RegistryConfig};
use crate::{schema, value};

/// The magic byte of Confluent's wire format.
const MAGIC: u8 = 0;

/// How a schema's registry subject is named (`key.subject.name.strategy` /
/// `value.subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectStrategy {
    /// `<topic>-key` / `<topic>-value` (Confluent's default).
    #[default]
    TopicName,
    /// The record's full name.
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectStrategy {
    const CLASSES: [(&'static str, SubjectStrategy); 3] = [
        (
            "io.confluent.kafka.serializers.subject.TopicNameStrategy",
            SubjectStrategy::TopicName,
        ),
        (
            "io.confluent.kafka.serializers.subject.RecordNameStrategy",
            SubjectStrategy::RecordName,
        ),
        (
            "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy",
            SubjectStrategy::TopicRecordName,
        ),
    ];

    fn subject(self, topic: &str, is_key: bool, schema: &Schema) -> Result<String, String> {
        let record = || {
            schema.name().map(str::to_owned).ok_or_else(|| {
                "RecordNameStrategy and TopicRecordNameStrategy need a named schema".to_owned()
            })
        };
        Ok(match self {
            SubjectStrategy::TopicName => {
                format!("{topic}-{}", if is_key { "key" } else { "value" })
            }
            SubjectStrategy::RecordName => record()?,
            SubjectStrategy::TopicRecordName => format!("{topic}-{}", record()?),
        })
    }
}

/// Options of [`AvroConverter`].
#[derive(Debug, Clone)]
pub struct AvroConfig {
    /// The registry.
    pub registry: RegistryConfig,
    /// Whether this converter writes keys (subjects end in `-key`).
    pub is_key: bool,
    /// The subject naming.
    pub strategy: SubjectStrategy,
    /// `auto.register.schemas` (default true): register new schemas, or only look them up.
    pub auto_register: bool,
}

impl AvroConfig {
    /// A value converter on `registry` with Confluent's defaults.
    pub fn new(registry: RegistryConfig) -> Self {
        AvroConfig {
            registry,
            is_key: false,
            strategy: SubjectStrategy::TopicName,
            auto_register: true,
        }
    }

    /// Reads Confluent's keys from a converter's scope (`value.converter.` + key).
    pub fn from_props(scope: &Scope<'_>, is_key: bool) -> Result<Self, AvroError> {
        let strategy_key = if is_key {
            "key.subject.name.strategy"
        } else {
            "value.subject.name.strategy"
        };
        let strategy = match scope.get(strategy_key) {
            None => SubjectStrategy::TopicName,
            Some(class) => SubjectStrategy::CLASSES
                .iter()
                .find(|(c, _)| *c == class)
                .map(|(_, s)| *s)
                .ok_or_else(|| AvroError::Config {
                    key: scope.key(strategy_key),
                    message: format!(
                        "unknown strategy `{class}` (known: {})",
                        SubjectStrategy::CLASSES.map(|(c, _)| c).join(", ")
                    ),
                })?,
        };
        let auto_register =
            scope
                .bool_or("auto.register.schemas", true)
                .map_err(|e| AvroError::Config {
                    key: scope.key("auto.register.schemas"),
                    message: e.to_string(),
                })?;
        Ok(AvroConfig {
            registry: RegistryConfig::from_props(scope)?,
            is_key,
            strategy,
            auto_register,
        })
    }
}

/// A Connect schema's Avro form and registry id under one subject.
struct Writer {
    /// Kept so that the cache key (its address) stays its own.
    _connect: Arc<Schema>,
    id: i32,
}

/// A registry schema read back.
struct Reader {
    avro: apache_avro::Schema,
    connect: Arc<Schema>,
}

/// Writer schemas by Connect schema address, then topic.
type Writers = HashMap<usize, HashMap<Box<str>, Arc<Writer>>>;

/// Confluent's `io.confluent.connect.avro.AvroConverter`: Connect records as Avro in
/// Confluent's wire format, schemas registered in a schema registry. Schemas are
/// converted, registered and parsed once per Connect schema and topic; ids read back are
/// fetched once. The registry is called synchronously (the converter API is), so a new
/// schema costs one blocking HTTP request on the calling thread.
pub struct AvroConverter {
    config: AvroConfig,
    client: RegistryClient,
    writers: Mutex<Writers>,
    readers: Mutex<HashMap<i32, Arc<Reader>>>,
}

impl std::fmt::Debug for AvroConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroConverter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Runs a blocking registry call without stalling a multi-threaded tokio runtime's other
/// tasks.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl AvroConverter {
    /// A converter for `config`.
    pub fn new(config: AvroConfig) -> Self {
        AvroConverter {
            client: RegistryClient::new(config.registry.clone()),
            config,
            writers: Mutex::default(),
            readers: Mutex::default(),
        }
    }

    fn writer(&self, topic: &str, schema: &Arc<Schema>) -> Result<Arc<Writer>, Error> {
        let key = Arc::as_ptr(schema) as usize;
        if let Some(w) = self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .and_then(|by_topic| by_topic.get(topic))
        {
            return Ok(w.clone());
        }
        let json = schema::to_avro(schema).to_string();
        // Parsed (and so checked) before the registry sees it.
        apache_avro::Schema::parse_str(&json).map_err(|e| {
            conversion_error(
                topic,
                format!("the Avro form of the schema is invalid: {e}: {json}"),
            )
        })?;
        let subject = self
            .config
            .strategy
            .subject(topic, self.config.is_key, schema)
            .map_err(|e| conversion_error(topic, e))?;
        let id = blocking(|| {
            if self.config.auto_register {
                self.client.register(&subject, &json)
            } else {
                self.client.lookup(&subject, &json)
            }
        })
        .map_err(|e| e.into_core(topic))?;
        tracing::debug!(%subject, id, "Avro schema registered");
        let writer = Arc::new(Writer {
            _connect: schema.clone(),
            id,
        });
        let mut writers = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        if writers.len() >= 1024 {
            writers.clear();
        }
        writers
            .entry(key)
            .or_default()
            .insert(topic.into(), writer.clone());
        Ok(writer)
    }

    fn reader(&self, topic: &str, id: i32) -> Result<Arc<Reader>, Error> {
        if let Some(r) = self
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(r.clone());
        }
        let text = blocking(|| self.client.schema_by_id(id)).map_err(|e| e.into_core(topic))?;
        let avro = apache_avro::Schema::parse_str(&text).map_err(|e| {
            conversion_error(topic, format!("schema id {id} is not valid Avro: {e}"))
        })?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| conversion_error(topic, format!("schema id {id} is not JSON: {e}")))?;
        let connect = schema::to_connect(&json)
            .map_err(|e| conversion_error(topic, format!("schema id {id}: {e}")))?;
        let reader = Arc::new(Reader { avro, connect });
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, reader.clone());
        Ok(reader)
    }
}

impl Converter for AvroConverter {
    fn serialize(
        &self,
        topic: &str,
        schema: Option<&Arc<Schema>>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<bool, Error> {
        let Some(schema) = schema else {
            if value.is_null() {
                return Ok(false);
            }
            return Err(conversion_error(
                topic,
                "a record without a schema cannot be written as Avro",
            ));
        };
        if value.is_null() && schema.is_optional() {
            // Kafka's null message, as Confluent writes a null value.
            return Ok(false);
        }
        let writer = self.writer(topic, schema)?;
        let start = out.len();
        out.push(MAGIC);
        out.extend_from_slice(&writer.id.to_be_bytes());
        value::encode(schema, value, out).map_err(|e| {
            out.truncate(start);
            conversion_error(topic, e.to_string())
        })?;
        Ok(true)
    }

    fn deserialize(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<Arc<Schema>>, Value), Error> {
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        let (header, mut body) = match bytes.split_first_chunk::<5>() {
            Some((h, body)) if h[0] == MAGIC => (h, body),
            _ => {
                return Err(conversion_error(
                    topic,
                    "not Confluent's Avro wire format (no magic byte 0 and schema id)".to_owned(),
                ))
            }
        };
        let id = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let reader = self.reader(topic, id)?;
        let datum = GenericDatumReader::builder(&reader.avro)
            .build()
            .and_then(|r| r.read_value(&mut body))
            .map_err(|e| {
                conversion_error(
                    topic,
                    format!("Avro body does not match schema id {id}: {e}"),
                )
            })?;
        let value = value::to_connect(&reader.connect, datum)
            .map_err(|e| conversion_error(topic, e.to_string()))?;
        Ok((Some(reader.connect.clone()), value))
    }
}
