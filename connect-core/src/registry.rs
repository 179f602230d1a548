//! Builds pipelines from Debezium / Kafka Connect properties.
//!
//! Connector crates register factories under their `connector.class` names; connect-core
//! knows no driver. Every key of the properties must be read by the engine, a converter,
//! a transform, a predicate or the connector, or the build fails naming it.
//!
//! Keys the registry reads itself:
//!
//! | key | meaning |
//! |---|---|
//! | `name` | pipeline (connector) name: the offsets namespace |
//! | `connector.class` | the registered connector |
//! | `tasks.max` | tasks per connector |
//! | `transforms`, `transforms.<a>.type`, `.predicate`, `.negate`, `.*` | transform chain |
//! | `predicates`, `predicates.<p>.type`, `.*` | predicates |
//! | `offset.storage` | `org.apache.kafka.connect.storage.FileOffsetBackingStore` (JSON file here) or `...MemoryOffsetBackingStore` |
//! | `offset.storage.file.filename` | offsets file |
//! | `offset.flush.interval.ms`, `offset.flush.records` | commit policy (either triggers) |
//! | `max.batch.size`, `max.batch.bytes`, `max.queue.batches`, `max.queue.bytes` | limits |
//! | `errors.tolerance`, `errors.retry.timeout`, `errors.retry.delay.max.ms` | error policy |
//! | `key.converter`, `value.converter`, `*.converter.schemas.enable` | converters (CloudEvents: `*.json.schemas.enable`, `*.extension.attributes.enable`, `*.serializer.type` / `*.data.serializer.type` = `json`) |
//! | `schema.history.internal`, `schema.history.internal.file.filename` | schema history |
//!
//! A sink pipeline ([`Registry::build_sink_pipeline`]) reads Kafka Connect's sink
//! connector file: the same keys, `connector.class` naming a sink, the topics read by the
//! registered sink runner ([`SINK_RUNNER_CLASS`]), and
//! `errors.deadletterqueue.topic.name` for the registered dead-letter queue.
//!
//! Accepted and ignored (documented no-ops of the embedded engine):
//! `offset.flush.timeout.ms`, `errors.log.enable`, `errors.log.include.messages`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::connector::{SinkConnector, SourceConnector};
use crate::convert::{
    ByteArrayConverter, CloudEventsConverter, Converter, JsonConverter, StringConverter,
};
use crate::engine::{
    CommitPolicy, DeadLetterQueue, ErrorTolerance, Pipeline, PipelineBuilder, PipelineSettings,
};
use crate::error::{Error, Result};
use crate::history::{FileSchemaHistory, MemorySchemaHistory, SchemaHistory};
use crate::offsets::{FileOffsetStore, MemoryOffsetStore, OffsetStore};
use crate::properties::{Properties, Scope};
use crate::transform::{
    ByLogicalTableRouter, Cast, DropHeaders, EventRouter, ExtractField, ExtractNewRecordState,
    Filter, Flatten, HasHeaderKey, HeaderFrom, HoistField, InsertField, InsertHeader, MaskField,
    Predicate, RecordIsTombstone, RegexRouter, ReplaceField, SetSchemaMetadata, Side,
    TimestampConverter, TimestampRouter, TopicNameMatches, Transform, TransformChain, ValueToKey,
};

/// Keys accepted and ignored, for compatibility with existing properties files.
pub const IGNORED_KEYS: &[&str] = &[
    "offset.flush.timeout.ms",
    "errors.log.enable",
    "errors.log.include.messages",
];

/// What a connector factory receives.
pub struct FactoryContext<'a> {
    /// The properties, unprefixed: read the connector's own keys from here.
    pub props: Scope<'a>,
    /// Converter for keys (`key.converter`, default JSON with schemas).
    pub key_converter: Arc<dyn Converter>,
    /// Converter for values (`value.converter`, default JSON with schemas).
    pub value_converter: Arc<dyn Converter>,
    /// Schema history (`schema.history.internal`), for sources that need one.
    pub history: Arc<dyn SchemaHistory>,
}

type SourceFactory =
    Arc<dyn Fn(&FactoryContext<'_>) -> Result<Arc<dyn SourceConnector>> + Send + Sync>;
type SinkFactory = Arc<dyn Fn(&FactoryContext<'_>) -> Result<Arc<dyn SinkConnector>> + Send + Sync>;
type TransformFactory = Arc<dyn Fn(&Scope<'_>) -> Result<Box<dyn Transform>> + Send + Sync>;
type PredicateFactory = Arc<dyn Fn(&Scope<'_>) -> Result<Arc<dyn Predicate>> + Send + Sync>;
type OffsetStoreFactory = Arc<dyn Fn(&Scope<'_>) -> Result<Arc<dyn OffsetStore>> + Send + Sync>;
type HistoryFactory = Arc<dyn Fn(&Scope<'_>) -> Result<Arc<dyn SchemaHistory>> + Send + Sync>;
type ConverterFactory = Arc<dyn Fn(&Scope<'_>, bool) -> Result<Arc<dyn Converter>> + Send + Sync>;
type DeadLetterFactory = Arc<dyn Fn(&Scope<'_>) -> Result<Arc<dyn DeadLetterQueue>> + Send + Sync>;

/// The source class a sink pipeline reads its topics with (the sink runner); a crate
/// that provides one (connect-kafka) registers it under this name.
pub const SINK_RUNNER_CLASS: &str = "connect.sink.runner";

/// A pipeline built from properties, before its destination is chosen.
pub struct BuiltPipeline {
    /// The engine name (`name`).
    pub name: String,
    /// The pipeline: finish it with an `into_*` destination.
    pub pipeline: PipelineBuilder,
    /// `key.converter`.
    pub key_converter: Arc<dyn Converter>,
    /// `value.converter`.
    pub value_converter: Arc<dyn Converter>,
}

impl std::fmt::Debug for BuiltPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltPipeline")
            .field("name", &self.name)
            .field("pipeline", &self.pipeline)
            .finish()
    }
}

/// Factories of connectors, transforms and predicates by class name.
#[derive(Clone)]
pub struct Registry {
    sources: HashMap<String, SourceFactory>,
    sinks: HashMap<String, SinkFactory>,
    transforms: HashMap<String, TransformFactory>,
    predicates: HashMap<String, PredicateFactory>,
    offset_stores: HashMap<String, OffsetStoreFactory>,
    histories: HashMap<String, HistoryFactory>,
    converters: HashMap<String, ConverterFactory>,
    dead_letter: Option<DeadLetterFactory>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut sources: Vec<_> = self.sources.keys().collect();
        sources.sort();
        f.debug_struct("Registry")
            .field("sources", &sources)
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry with the built-in transforms and predicates and no connectors.
    pub fn new() -> Self {
        let mut r = Registry {
            sources: HashMap::new(),
            sinks: HashMap::new(),
            transforms: HashMap::new(),
            predicates: HashMap::new(),
            offset_stores: HashMap::new(),
            histories: HashMap::new(),
            converters: HashMap::new(),
            dead_letter: None,
        };
        r.register_transform("io.debezium.transforms.ExtractNewRecordState", |s| {
            Ok(Box::new(ExtractNewRecordState::from_props(s)?))
        });
        r.register_transform("io.debezium.transforms.outbox.EventRouter", |s| {
            Ok(Box::new(EventRouter::from_props(s)?))
        });
        r.register_transform("io.debezium.transforms.ByLogicalTableRouter", |s| {
            Ok(Box::new(ByLogicalTableRouter::from_props(s)?))
        });
        r.register_transform("org.apache.kafka.connect.transforms.RegexRouter", |s| {
            Ok(Box::new(RegexRouter::from_props(s)?))
        });
        r.register_transform("org.apache.kafka.connect.transforms.Filter", |_| {
            Ok(Box::new(Filter))
        });
        r.register_kafka_transforms();
        r.register_predicate(
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            |s| Ok(Arc::new(TopicNameMatches::from_props(s)?)),
        );
        r.register_predicate(
            "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
            |s| Ok(Arc::new(HasHeaderKey::from_props(s)?)),
        );
        r.register_predicate(
            "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
            |_| Ok(Arc::new(RecordIsTombstone)),
        );
        r
    }

    /// Kafka Connect's transforms under their class names, the `$Key` / `$Value` forms
    /// of each where Kafka has both.
    fn register_kafka_transforms(&mut self) {
        const PREFIX: &str = "org.apache.kafka.connect.transforms.";
        type SidedFactory = fn(Side, &Scope<'_>) -> Result<Box<dyn Transform>>;
        let sided: [(&str, SidedFactory); 10] = [
            ("InsertField", |side, s| {
                Ok(Box::new(InsertField::from_props(side, s)?))
            }),
            ("ReplaceField", |side, s| {
                Ok(Box::new(ReplaceField::from_props(side, s)?))
            }),
            ("MaskField", |side, s| {
                Ok(Box::new(MaskField::from_props(side, s)?))
            }),
            ("ExtractField", |side, s| {
                Ok(Box::new(ExtractField::from_props(side, s)?))
            }),
            ("HoistField", |side, s| {
                Ok(Box::new(HoistField::from_props(side, s)?))
            }),
            ("Cast", |side, s| Ok(Box::new(Cast::from_props(side, s)?))),
            ("Flatten", |side, s| {
                Ok(Box::new(Flatten::from_props(side, s)?))
            }),
            ("TimestampConverter", |side, s| {
                Ok(Box::new(TimestampConverter::from_props(side, s)?))
            }),
            ("HeaderFrom", |side, s| {
                Ok(Box::new(HeaderFrom::from_props(side, s)?))
            }),
            ("SetSchemaMetadata", |side, s| {
                Ok(Box::new(SetSchemaMetadata::from_props(side, s)?))
            }),
        ];
        for (name, factory) in sided {
            for (suffix, side) in [("$Key", Side::Key), ("$Value", Side::Value)] {
                self.register_transform(&format!("{PREFIX}{name}{suffix}"), move |s| {
                    factory(side, s)
                });
            }
        }
        self.register_transform(&format!("{PREFIX}ValueToKey"), |s| {
            Ok(Box::new(ValueToKey::from_props(s)?))
        });
        self.register_transform(&format!("{PREFIX}TimestampRouter"), |s| {
            Ok(Box::new(TimestampRouter::from_props(s)?))
        });
        self.register_transform(&format!("{PREFIX}InsertHeader"), |s| {
            Ok(Box::new(InsertHeader::from_props(s)?))
        });
        self.register_transform(&format!("{PREFIX}DropHeaders"), |s| {
            Ok(Box::new(DropHeaders::from_props(s)?))
        });
    }

    /// Registers a converter factory under its `key.converter` / `value.converter` class
    /// name. The factory reads its options from the scope of the converter key
    /// (`value.converter.` + option) and learns whether it converts keys.
    pub fn register_converter(
        &mut self,
        class: &str,
        factory: impl Fn(&Scope<'_>, bool) -> Result<Arc<dyn Converter>> + Send + Sync + 'static,
    ) {
        self.converters.insert(class.to_owned(), Arc::new(factory));
    }

    /// Registers a source connector factory under a `connector.class` name.
    pub fn register_source(
        &mut self,
        class: &str,
        factory: impl Fn(&FactoryContext<'_>) -> Result<Arc<dyn SourceConnector>>
            + Send
            + Sync
            + 'static,
    ) {
        self.sources.insert(class.to_owned(), Arc::new(factory));
    }

    /// Registers a sink connector factory.
    pub fn register_sink(
        &mut self,
        class: &str,
        factory: impl Fn(&FactoryContext<'_>) -> Result<Arc<dyn SinkConnector>> + Send + Sync + 'static,
    ) {
        self.sinks.insert(class.to_owned(), Arc::new(factory));
    }

    /// Registers a transform factory under its `transforms.<alias>.type` name.
    pub fn register_transform(
        &mut self,
        class: &str,
        factory: impl Fn(&Scope<'_>) -> Result<Box<dyn Transform>> + Send + Sync + 'static,
    ) {
        self.transforms.insert(class.to_owned(), Arc::new(factory));
    }

    /// Registers a predicate factory under its `predicates.<alias>.type` name.
    pub fn register_predicate(
        &mut self,
        class: &str,
        factory: impl Fn(&Scope<'_>) -> Result<Arc<dyn Predicate>> + Send + Sync + 'static,
    ) {
        self.predicates.insert(class.to_owned(), Arc::new(factory));
    }

    /// Registers an offset store under its `offset.storage` class name (e.g. Kafka
    /// Connect's `KafkaOffsetBackingStore`, by connect-kafka). The factory reads its own
    /// keys from the unprefixed properties.
    pub fn register_offset_store(
        &mut self,
        class: &str,
        factory: impl Fn(&Scope<'_>) -> Result<Arc<dyn OffsetStore>> + Send + Sync + 'static,
    ) {
        self.offset_stores
            .insert(class.to_owned(), Arc::new(factory));
    }

    /// Registers a schema history under its `schema.history.internal` class name.
    pub fn register_schema_history(
        &mut self,
        class: &str,
        factory: impl Fn(&Scope<'_>) -> Result<Arc<dyn SchemaHistory>> + Send + Sync + 'static,
    ) {
        self.histories.insert(class.to_owned(), Arc::new(factory));
    }

    /// Builds a source pipeline from properties. Every key must be understood.
    pub fn build_pipeline(&self, props: &Properties) -> Result<BuiltPipeline> {
        let root = props.root();
        let (name, factory) = self.connector(&root, &self.sources, "source")?;
        let (key_converter, value_converter) = (
            self.converter(&root, "key.converter")?,
            self.converter(&root, "value.converter")?,
        );
        let history = self.history(&root)?;
        let ctx = FactoryContext {
            props: root.clone(),
            key_converter: key_converter.clone(),
            value_converter: value_converter.clone(),
            history,
        };
        let pipeline = self.assemble(&root, &name, factory(&ctx)?)?;
        props.reject_unused()?;
        Ok(BuiltPipeline {
            name,
            pipeline,
            key_converter,
            value_converter,
        })
    }

    /// Registers the dead-letter queue a sink pipeline sends failed records to when
    /// `errors.deadletterqueue.topic.name` is set (connect-kafka's dead-letter topic).
    pub fn register_dead_letter_queue(
        &mut self,
        factory: impl Fn(&Scope<'_>) -> Result<Arc<dyn DeadLetterQueue>> + Send + Sync + 'static,
    ) {
        self.dead_letter = Some(Arc::new(factory));
    }

    /// Builds a sink pipeline from Kafka Connect's sink connector properties: the
    /// registered sink runner ([`SINK_RUNNER_CLASS`]) reads the topics (`topics` or
    /// `topics.regex`), then converters, transforms and the sink named by
    /// `connector.class`; `errors.tolerance=all` with `errors.deadletterqueue.topic.name`
    /// sends failed records to the registered dead-letter queue. Returns the pipeline's
    /// name and the pipeline. Every key must be understood.
    pub fn build_sink_pipeline(&self, props: &Properties) -> Result<(String, Pipeline)> {
        let root = props.root();
        let (name, sink_factory) = self.connector(&root, &self.sinks, "sink")?;
        let runner = self.sources.get(SINK_RUNNER_CLASS).ok_or_else(|| {
            Error::config(
                "connector.class",
                "a sink needs a sink runner to read its topics: register connect-kafka",
            )
        })?;
        let ctx = FactoryContext {
            props: root.clone(),
            key_converter: self.converter(&root, "key.converter")?,
            value_converter: self.converter(&root, "value.converter")?,
            history: Arc::new(MemorySchemaHistory::new()),
        };
        let mut pipeline = self.assemble(&root, &name, runner(&ctx)?)?;
        let sink = sink_factory(&ctx)?;
        if root.get("errors.deadletterqueue.topic.name").is_some() {
            let factory = self.dead_letter.as_ref().ok_or_else(|| {
                Error::config(
                    "errors.deadletterqueue.topic.name",
                    "no dead-letter queue registered: register connect-kafka",
                )
            })?;
            pipeline = pipeline.dead_letter_arc(factory(&root)?);
        }
        props.reject_unused()?;
        Ok((name, pipeline.into_connector_arc(sink)))
    }

    /// Builds a sink connector from properties (its own file, as in Kafka Connect).
    pub fn build_sink(&self, props: &Properties) -> Result<Arc<dyn SinkConnector>> {
        let root = props.root();
        let _ = root.get("tasks.max");
        let (_, factory) = self.connector(&root, &self.sinks, "sink")?;
        let ctx = FactoryContext {
            props: root.clone(),
            key_converter: self.converter(&root, "key.converter")?,
            value_converter: self.converter(&root, "value.converter")?,
            history: Arc::new(MemorySchemaHistory::new()),
        };
        let sink = factory(&ctx)?;
        props.reject_unused()?;
        Ok(sink)
    }

    fn offset_store(&self, root: &Scope<'_>) -> Result<Arc<dyn OffsetStore>> {
        const FILE: &str = "org.apache.kafka.connect.storage.FileOffsetBackingStore";
        const MEMORY: &str = "org.apache.kafka.connect.storage.MemoryOffsetBackingStore";
        let class = root.get("offset.storage");
        if let Some(factory) = class.and_then(|c| self.offset_stores.get(c)) {
            return factory(root);
        }
        let filename = root.get("offset.storage.file.filename");
        match (class, filename) {
            (Some(FILE) | None, Some(f)) => Ok(Arc::new(FileOffsetStore::open(f)?)),
            (Some(FILE), None) => Err(Error::config(
                "offset.storage.file.filename",
                "is required with FileOffsetBackingStore",
            )),
            (Some(MEMORY) | None, None) => Ok(Arc::new(MemoryOffsetStore::new())),
            (Some(MEMORY), Some(_)) => Err(Error::config(
                "offset.storage.file.filename",
                "has no effect with MemoryOffsetBackingStore",
            )),
            (Some(other), _) => Err(Error::config(
                "offset.storage",
                format!(
                    "unknown offset store `{other}` (accepted: {FILE}, {MEMORY}{})",
                    self.registered(&self.offset_stores)
                ),
            )),
        }
    }

    fn history(&self, root: &Scope<'_>) -> Result<Arc<dyn SchemaHistory>> {
        const FILE: &str = "io.debezium.storage.file.history.FileSchemaHistory";
        const MEMORY: &str = "io.debezium.relational.history.MemorySchemaHistory";
        match root.get("schema.history.internal") {
            Some(FILE) => Ok(Arc::new(FileSchemaHistory::open(
                root.require("schema.history.internal.file.filename")?,
            )?)),
            Some(MEMORY) | None => Ok(Arc::new(MemorySchemaHistory::new())),
            Some(other) => match self.histories.get(other) {
                Some(factory) => factory(root),
                None => Err(Error::config(
                    "schema.history.internal",
                    format!(
                        "unknown schema history `{other}` (accepted: {FILE}, {MEMORY}{})",
                        self.registered(&self.histories)
                    ),
                )),
            },
        }
    }

    fn registered<T>(&self, map: &HashMap<String, T>) -> String {
        sorted_names(map).iter().map(|n| format!(", {n}")).collect()
    }

    /// The pipeline around `source`: limits and policies, transforms, offset store.
    fn assemble(
        &self,
        root: &Scope<'_>,
        name: &str,
        source: Arc<dyn SourceConnector>,
    ) -> Result<PipelineBuilder> {
        let settings = settings(root)?;
        settings.validate()?;
        Ok(PipelineBuilder::new(name)
            .source_arc(source)
            .transforms(self.chain(root)?)
            .offsets_arc(self.offset_store(root)?)
            .settings(settings))
    }

    /// Reads the keys every connector file has (`name`, `connector.class`, the ignored
    /// ones) and finds the `kind` factory `connector.class` names.
    fn connector<'m, T>(
        &self,
        root: &Scope<'_>,
        factories: &'m HashMap<String, T>,
        kind: &str,
    ) -> Result<(String, &'m T)> {
        for key in IGNORED_KEYS {
            let _ = root.get(key);
        }
        let name = root
            .get("name")
            .unwrap_or(crate::engine::DEFAULT_ENGINE_NAME)
            .to_owned();
        let class = root.require("connector.class")?;
        let factory = factories.get(class).ok_or_else(|| {
            Error::config(
                "connector.class",
                format!(
                    "no {kind} connector registered as `{class}`{}",
                    self.known(factories)
                ),
            )
        })?;
        Ok((name, factory))
    }

    fn known<T>(&self, map: &HashMap<String, T>) -> String {
        let names = sorted_names(map);
        if names.is_empty() {
            String::from(" (none registered: add the connector crate's `register`)")
        } else {
            format!(" (known: {})", names.join(", "))
        }
    }

    /// A transform chain alone, from Kafka Connect's `transforms` / `predicates` keys (for
    /// a chain used outside a pipeline). Any other key, or an option no transform read, is
    /// an error naming it.
    pub fn build_transforms(&self, props: &Properties) -> Result<TransformChain> {
        let chain = self.chain(&props.root())?;
        props.reject_unused()?;
        Ok(chain)
    }

    /// The converter named by `key` (`key.converter`, `value.converter`): a registered
    /// one, else a built-in.
    fn converter(&self, root: &Scope<'_>, key: &str) -> Result<Arc<dyn Converter>> {
        match root.get(key).and_then(|class| self.converters.get(class)) {
            Some(factory) => factory(&root.scope(&format!("{key}.")), key == "key.converter"),
            None => builtin_converter(root, key).map_err(|e| match e {
                Error::Config { key, message } if !self.converters.is_empty() => Error::Config {
                    message: format!(
                        "{message}; registered: {}",
                        sorted_names(&self.converters).join(", ")
                    ),
                    key,
                },
                e => e,
            }),
        }
    }

    fn chain(&self, root: &Scope<'_>) -> Result<TransformChain> {
        let mut predicates = HashMap::new();
        for alias in root.list("predicates") {
            let scope = root.scope(&format!("predicates.{alias}."));
            let class = scope.require("type")?;
            let factory = self.predicates.get(class).ok_or_else(|| {
                Error::config(
                    scope.key("type"),
                    format!(
                        "unknown predicate `{class}`{}",
                        self.known(&self.predicates)
                    ),
                )
            })?;
            predicates.insert(alias.to_owned(), factory(&scope)?);
        }
        let mut chain = TransformChain::new();
        for alias in root.list("transforms") {
            let scope = root.scope(&format!("transforms.{alias}."));
            let class = scope.require("type")?;
            let factory = self.transforms.get(class).ok_or_else(|| {
                Error::config(
                    scope.key("type"),
                    format!(
                        "unknown transform `{class}`{}",
                        self.known(&self.transforms)
                    ),
                )
            })?;
            let negate = scope.bool_or("negate", false)?;
            let predicate = match scope.get("predicate") {
                Some(p) => Some((
                    predicates.get(p).cloned().ok_or_else(|| {
                        Error::config(
                            scope.key("predicate"),
                            format!("predicate `{p}` is not listed in `predicates`"),
                        )
                    })?,
                    negate,
                )),
                None => None,
            };
            chain.push_boxed(alias, factory(&scope)?, predicate);
        }
        Ok(chain)
    }
}

fn sorted_names<T>(map: &HashMap<String, T>) -> Vec<&str> {
    let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

fn builtin_converter(root: &Scope<'_>, key: &str) -> Result<Arc<dyn Converter>> {
    let schemas = root.bool_or(&format!("{key}.schemas.enable"), true)?;
    Ok(match root.get(key) {
        None | Some("org.apache.kafka.connect.json.JsonConverter") => Arc::new(JsonConverter::new(schemas)),
        Some("org.apache.kafka.connect.storage.StringConverter") => Arc::new(StringConverter),
        Some("org.apache.kafka.connect.converters.ByteArrayConverter") => Arc::new(ByteArrayConverter),
        Some("io.debezium.converters.CloudEventsConverter") => {
            for format in ["serializer.type", "data.serializer.type"] {
                let name = format!("{key}.{format}");
                root.one_of(&name, &["json"], "json").map_err(|_| {
                    Error::config(&name, "only `json` is supported (Avro CloudEvents are not)")
                })?;
            }
            Arc::new(CloudEventsConverter::new(
                root.bool_or(&format!("{key}.json.schemas.enable"), true)?,
                root.bool_or(&format!("{key}.extension.attributes.enable"), true)?,
            ))
        }
        Some(other) => {
            return Err(Error::config(
                key,
                format!("unknown converter `{other}` (accepted: org.apache.kafka.connect.json.JsonConverter, org.apache.kafka.connect.storage.StringConverter, org.apache.kafka.connect.converters.ByteArrayConverter, io.debezium.converters.CloudEventsConverter; others once a crate registers them, e.g. connect-avro's io.confluent.connect.avro.AvroConverter)"),
            ))
        }
    })
}

fn settings(root: &Scope<'_>) -> Result<PipelineSettings> {
    let d = PipelineSettings::default();
    let interval = root.millis_or("offset.flush.interval.ms", Duration::from_secs(1))?;
    let mut policy = CommitPolicy::periodic(interval);
    if let Some(n) = root.get("offset.flush.records") {
        let n: u64 = n.parse().map_err(|e| {
            Error::config("offset.flush.records", format!("invalid value `{n}`: {e}"))
        })?;
        policy = CommitPolicy::every_records(n).or(policy);
    }
    let tolerance = match root.one_of("errors.tolerance", &["none", "all"], "none")? {
        "all" => ErrorTolerance::All,
        _ => ErrorTolerance::None,
    };
    let retry_ms: i64 = root.parse_or(
        "errors.retry.timeout",
        d.retry_timeout.map_or(-1, |t| t.as_millis() as i64),
    )?;
    Ok(PipelineSettings {
        tasks_max: root.parse_or("tasks.max", d.tasks_max)?,
        max_batch_records: root.parse_or("max.batch.size", d.max_batch_records)?,
        max_batch_bytes: root.parse_or("max.batch.bytes", d.max_batch_bytes)?,
        max_queue_batches: root.parse_or("max.queue.batches", d.max_queue_batches)?,
        max_queue_bytes: root.parse_or("max.queue.bytes", d.max_queue_bytes)?,
        commit_policy: policy,
        tolerance,
        retry_timeout: (retry_ms >= 0).then(|| Duration::from_millis(retry_ms as u64)),
        retry_max_delay: root.millis_or("errors.retry.delay.max.ms", d.retry_max_delay)?,
    })
}
