//! The Avro converter against a schema registry speaking Confluent's REST API: the one of
//! `connect_avro::testing`, as no registry server installs here (see its docs).

use std::net::TcpListener;
use std::sync::Arc;

use connect_avro::testing::Registry;
use connect_avro::{Auth, AvroConfig, AvroConverter, RegistryConfig, SubjectStrategy};
use connect_core::envelope::EnvelopeSchema;
use connect_core::properties::Properties;
use connect_core::schema::logical;
use connect_core::{Converter, Op, Schema, SchemaType, Struct, Value};

fn converter(registry: &Registry) -> AvroConverter {
    AvroConverter::new(AvroConfig::new(RegistryConfig::new(&registry.url)))
}

fn ser(c: &AvroConverter, topic: &str, schema: &Arc<Schema>, value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(c.serialize(topic, Some(schema), value, &mut out).unwrap());
    out
}

/// A struct of every Connect type, logical types and Debezium's semantic types included.
fn every_type() -> (Arc<Schema>, Value) {
    let decimal = Schema::builder(SchemaType::Bytes)
        .name(logical::DECIMAL)
        .version(1)
        .parameter("scale", "2")
        .parameter("connect.decimal.precision", "10")
        .build();
    let nested = Schema::struct_builder()
        .name("shop.Address")
        .optional()
        .field("city", Schema::required(SchemaType::String))
        .build();
    let vsd = Schema::struct_builder()
        .name("io.debezium.data.VariableScaleDecimal")
        .version(1)
        .doc("Variable scaled decimal")
        .optional()
        .field("scale", Schema::required(SchemaType::Int32))
        .field("value", Schema::required(SchemaType::Bytes))
        .build();
    let named = |ty, name: &str| Schema::builder(ty).name(name).version(1).optional().build();
    let schema = Schema::struct_builder()
        .name("shop.Everything")
        .doc("all of them")
        .field("b", Schema::required(SchemaType::Boolean))
        .field("i8", Schema::required(SchemaType::Int8))
        .field("i16", Schema::required(SchemaType::Int16))
        .field("i32", Schema::required(SchemaType::Int32))
        .field("i64", Schema::required(SchemaType::Int64))
        .field("f32", Schema::required(SchemaType::Float32))
        .field("f64", Schema::required(SchemaType::Float64))
        .field("s", Schema::required(SchemaType::String))
        .field("bytes", Schema::required(SchemaType::Bytes))
        .field("opt_null", Schema::optional(SchemaType::String))
        .field("opt_set", Schema::optional(SchemaType::Int64))
        .field(
            "with_default",
            Schema::builder(SchemaType::Int32)
                .default_value(Value::Int32(42))
                .build(),
        )
        .field("dec", decimal)
        .field("date", named(SchemaType::Int32, logical::DATE))
        .field("time", named(SchemaType::Int32, logical::TIME))
        .field("ts", named(SchemaType::Int64, logical::TIMESTAMP))
        .field(
            "micro_ts",
            named(SchemaType::Int64, "io.debezium.time.MicroTimestamp"),
        )
        .field(
            "micro_time",
            named(SchemaType::Int64, "io.debezium.time.MicroTime"),
        )
        .field(
            "zoned",
            named(SchemaType::String, "io.debezium.time.ZonedTimestamp"),
        )
        .field("json", named(SchemaType::String, "io.debezium.data.Json"))
        .field("vsd", vsd.clone())
        .field(
            "list",
            Schema::array_builder(Schema::optional(SchemaType::Int32)).build(),
        )
        .field(
            "dict",
            Schema::map_builder(
                Schema::required(SchemaType::String),
                Schema::required(SchemaType::Float64),
            )
            .build(),
        )
        .field(
            "by_id",
            Schema::map_builder(
                Schema::required(SchemaType::Int32),
                Schema::required(SchemaType::String),
            )
            .build(),
        )
        .field("address", nested.clone())
        .field("no_address", nested.clone())
        .build();
    let values = vec![
        Value::Boolean(true),
        Value::Int8(-8),
        Value::Int16(-1600),
        Value::Int32(-32),
        Value::Int64(i64::MIN),
        Value::Float32(1.5),
        Value::Float64(-2.25e-300),
        Value::from("héllo \"x\""),
        Value::Bytes(vec![0, 255, 7].into()),
        Value::Null,
        Value::Int64(7),
        Value::Int32(3),
        Value::decimal(-12345),
        Value::Int32(20_000),
        Value::Int32(3_600_000),
        Value::Int64(1_700_000_000_123),
        Value::Int64(1_700_000_000_123_456),
        Value::Int64(86_399_999_999),
        Value::from("2026-11-27T10:00:00.5+01:00"),
        Value::from(r#"{"a":1}"#),
        Value::Struct(Struct::new(vsd, vec![Value::Int32(3), Value::decimal(5)]).unwrap()),
        Value::Array(vec![Value::Int32(1), Value::Null, Value::Int32(3)]),
        Value::Map(vec![
            (Value::from("a"), Value::Float64(1.0)),
            (Value::from("b"), Value::Float64(2.0)),
        ]),
        Value::Map(vec![
            (Value::Int32(2), Value::from("two")),
            (Value::Int32(1), Value::from("one")),
        ]),
        Value::Struct(Struct::new(nested, vec![Value::from("Oslo")]).unwrap()),
        Value::Null,
    ];
    let value = Value::Struct(Struct::new(schema.clone(), values).unwrap());
    (schema, value)
}

#[test]
fn every_connect_type_round_trips_through_the_registry() {
    let registry = Registry::start(None);
    let c = converter(&registry);
    let (schema, value) = every_type();
    let bytes = ser(&c, "everything", &schema, &value);
    assert_eq!(bytes[0], 0, "magic byte");
    assert_eq!(
        i32::from_be_bytes(bytes[1..5].try_into().unwrap()),
        1,
        "schema id"
    );
    // A fresh converter knows nothing: it reads the writer schema by id.
    let reader = converter(&registry);
    let (back_schema, back) = reader.deserialize("everything", Some(&bytes)).unwrap();
    let fetch = registry.seen().last().unwrap().clone();
    assert_eq!(
        (fetch.method.as_str(), fetch.path.as_str()),
        ("GET", "/schemas/ids/1")
    );
    assert_eq!(
        back_schema.as_deref().map(Schema::json),
        Some(schema.json())
    );
    assert_eq!(back, value);
    let avro = registry.schema_of("everything-value");
    assert_eq!(avro["type"], "record");
    assert_eq!(avro["name"], "Everything");
    assert_eq!(avro["namespace"], "shop");
    let field = |name: &str| {
        avro["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        field("i8")["type"],
        serde_json::json!({"type": "int", "connect.type": "int8"})
    );
    assert_eq!(field("dec")["type"]["logicalType"], "decimal");
    assert_eq!(field("dec")["type"]["precision"], 10);
    assert_eq!(field("dec")["type"]["scale"], 2);
    assert_eq!(field("date")["type"][1]["logicalType"], "date");
    assert_eq!(field("ts")["type"][1]["logicalType"], "timestamp-millis");
    assert_eq!(
        field("micro_ts")["type"][1]["logicalType"],
        "timestamp-micros"
    );
    assert_eq!(
        field("micro_ts")["type"][1]["connect.name"],
        "io.debezium.time.MicroTimestamp"
    );
    assert_eq!(
        field("opt_null")["type"],
        serde_json::json!(["null", "string"])
    );
    assert_eq!(field("opt_null")["default"], serde_json::Value::Null);
    assert_eq!(field("with_default")["default"], 42);
    assert_eq!(field("by_id")["type"]["items"]["name"], "MapEntry");
    // The same schema again costs no request; reads after the first fetch neither.
    let before = registry.seen().len();
    for _ in 0..50 {
        ser(&c, "everything", &schema, &value);
        reader.deserialize("everything", Some(&bytes)).unwrap();
    }
    assert_eq!(registry.seen().len(), before);
}

#[test]
fn a_debezium_envelope_defines_its_row_record_once_and_names_it() {
    let registry = Registry::start(None);
    let c = converter(&registry);
    let row = Schema::struct_builder()
        .name("srv.public.t.Value")
        .optional()
        .field("id", Schema::required(SchemaType::Int32))
        .build();
    let source = Schema::struct_builder()
        .name("io.debezium.connector.postgresql.Source")
        .field("lsn", Schema::optional(SchemaType::Int64))
        .build();
    let env = EnvelopeSchema::new("srv.public.t", row.clone(), source.clone()).unwrap();
    let mk = |id| Struct::new(row.clone(), vec![Value::Int32(id)]).unwrap();
    let value = env.event(
        Op::Update,
        Some(mk(1)),
        Some(mk(2)),
        Struct::new(source, vec![Value::Int64(9)]).unwrap(),
        None,
        std::time::UNIX_EPOCH,
    );
    let bytes = ser(&c, "srv.public.t", env.schema(), &value);
    let avro = registry.schema_of("srv.public.t-value");
    assert_eq!(avro["name"], "Envelope");
    assert_eq!(avro["namespace"], "srv.public.t");
    assert_eq!(avro["connect.name"], "srv.public.t.Envelope");
    assert_eq!(avro["connect.version"], 2);
    assert_eq!(avro["fields"][0]["type"][1]["name"], "Value");
    // `after` refers to the record `before` defined.
    assert_eq!(
        avro["fields"][1]["type"],
        serde_json::json!(["null", "srv.public.t.Value"])
    );
    let (schema, back) = converter(&registry)
        .deserialize("srv.public.t", Some(&bytes))
        .unwrap();
    assert_eq!(schema.unwrap().json(), env.schema().json());
    assert_eq!(back, value);
}

#[test]
fn subjects_follow_the_configured_strategy_and_keys_end_in_key() {
    let registry = Registry::start(None);
    let schema = Schema::struct_builder()
        .name("shop.Order")
        .field("id", Schema::required(SchemaType::Int32))
        .build();
    let value = Value::Struct(Struct::new(schema.clone(), vec![Value::Int32(1)]).unwrap());
    let subject_of = |strategy: Option<&str>, is_key: bool| {
        let mut pairs = vec![(
            "value.converter.schema.registry.url".to_owned(),
            registry.url.clone(),
        )];
        if let Some(s) = strategy {
            let key = if is_key { "key" } else { "value" };
            pairs.push((
                format!("value.converter.{key}.subject.name.strategy"),
                s.to_owned(),
            ));
        }
        let props = Properties::from_pairs(pairs);
        let config = AvroConfig::from_props(&props.scope("value.converter."), is_key).unwrap();
        ser(&AvroConverter::new(config), "orders", &schema, &value);
        registry.seen().last().unwrap().path.clone()
    };
    assert_eq!(subject_of(None, false), "/subjects/orders-value/versions");
    assert_eq!(subject_of(None, true), "/subjects/orders-key/versions");
    assert_eq!(
        subject_of(
            Some("io.confluent.kafka.serializers.subject.RecordNameStrategy"),
            false
        ),
        "/subjects/shop.Order/versions"
    );
    assert_eq!(
        subject_of(
            Some("io.confluent.kafka.serializers.subject.TopicRecordNameStrategy"),
            false
        ),
        "/subjects/orders-shop.Order/versions"
    );
    let mut config = AvroConfig::new(RegistryConfig::new(&registry.url));
    config.strategy = SubjectStrategy::RecordName;
    let unnamed = Schema::struct_builder()
        .field("x", Schema::required(SchemaType::Int32))
        .build();
    let v = Value::Struct(Struct::new(unnamed.clone(), vec![Value::Int32(1)]).unwrap());
    let e = AvroConverter::new(config)
        .serialize("orders", Some(&unnamed), &v, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("named schema"), "{e}");
}

#[test]
fn basic_and_bearer_credentials_are_sent_and_refusals_name_the_keys() {
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("user:s3cret")
    );
    let registry = Registry::start(Some(&basic));
    let (schema, value) = every_type();
    let with = |auth: Auth| {
        AvroConverter::new(AvroConfig::new(
            RegistryConfig::new(&registry.url).with_auth(auth),
        ))
    };
    ser(
        &with(Auth::Basic {
            user_info: "user:s3cret".into(),
        }),
        "t",
        &schema,
        &value,
    );
    assert_eq!(
        registry.seen().last().unwrap().authorization.as_deref(),
        Some(basic.as_str())
    );
    let e = with(Auth::Basic {
        user_info: "user:wrong".into(),
    })
    .serialize("t", Some(&schema), &value, &mut Vec::new())
    .unwrap_err()
    .to_string();
    assert!(e.contains("basic.auth") && !e.contains("wrong"), "{e}");

    let bearer = Registry::start(Some("Bearer tok-123"));
    let c = AvroConverter::new(AvroConfig::new(RegistryConfig::new(&bearer.url).with_auth(
        Auth::Bearer {
            token: "tok-123".into(),
        },
    )));
    ser(&c, "t", &schema, &value);
    assert_eq!(
        bearer.seen().last().unwrap().authorization.as_deref(),
        Some("Bearer tok-123")
    );
    // From properties, with the keys Confluent uses.
    let props = Properties::from_pairs([
        ("value.converter.schema.registry.url", bearer.url.as_str()),
        (
            "value.converter.bearer.auth.credentials.source",
            "STATIC_TOKEN",
        ),
        ("value.converter.bearer.auth.token", "tok-123"),
    ]);
    let config = AvroConfig::from_props(&props.scope("value.converter."), false).unwrap();
    assert_eq!(
        config.registry.auth,
        Auth::Bearer {
            token: "tok-123".into()
        }
    );
    assert!(!format!("{config:?}").contains("tok-123"));
}

#[test]
fn lookups_without_auto_registration_and_unreachable_registries() {
    let registry = Registry::start(None);
    let (schema, value) = every_type();
    let mut config = AvroConfig::new(RegistryConfig::new(&registry.url));
    config.auto_register = false;
    let e = AvroConverter::new(config.clone())
        .serialize("t", Some(&schema), &value, &mut Vec::new())
        .unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("t-value"), "{e}");
    // Once registered (by another writer), a lookup finds the same id.
    let id = ser(&converter(&registry), "t", &schema, &value)[1..5].to_vec();
    assert_eq!(
        ser(&AvroConverter::new(config), "t", &schema, &value)[1..5],
        id[..]
    );
    assert_eq!(registry.seen().last().unwrap().path, "/subjects/t-value");

    // Nothing listens on the first URL: the second serves; with none, the error is retryable.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut both = RegistryConfig::new(&dead);
    both.urls.push(registry.url.clone());
    ser(
        &AvroConverter::new(AvroConfig::new(both)),
        "u",
        &schema,
        &value,
    );
    let e = AvroConverter::new(AvroConfig::new(RegistryConfig::new(&dead)))
        .serialize("u", Some(&schema), &value, &mut Vec::new())
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
}

#[test]
fn bad_bytes_and_bad_settings_are_named() {
    let registry = Registry::start(None);
    let c = converter(&registry);
    let e = c
        .deserialize("t", Some(b"{\"json\":1}"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("magic byte"), "{e}");
    let e = c
        .deserialize("t", Some(&[0, 0, 0, 0, 99, 1]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("schema id 99"), "{e}");
    assert!(!c
        .serialize("t", None, &Value::Null, &mut Vec::new())
        .unwrap());

    let mut r = connect_core::Registry::new();
    connect_file::register(&mut r);
    connect_avro::register(&mut r);
    let build = |pairs: &[(&str, &str)]| {
        let mut all = vec![
            ("name", "p"),
            (
                "connector.class",
                "org.apache.kafka.connect.file.FileStreamSourceConnector",
            ),
            ("file", "/dev/null"),
            ("topic", "t"),
            ("value.converter", "io.confluent.connect.avro.AvroConverter"),
        ];
        all.extend_from_slice(pairs);
        let props = Properties::from_pairs(all.iter().copied());
        match r.build_pipeline(&props) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let e = build(&[]);
    assert!(e.contains("value.converter.schema.registry.url"), "{e}");
    let e = build(&[
        ("value.converter.schema.registry.url", "http://127.0.0.1:1"),
        ("value.converter.value.subject.name.strategy", "Nope"),
    ]);
    assert!(
        e.contains("value.converter.value.subject.name.strategy"),
        "{e}"
    );
    let e = build(&[
        ("value.converter.schema.registry.url", "http://127.0.0.1:1"),
        ("value.converter.basic.auth.credentials.source", "USER_INFO"),
    ]);
    assert!(e.contains("value.converter.basic.auth.user.info"), "{e}");
}
