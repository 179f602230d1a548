//! Kafka Connect's transforms built from Connect-style properties, each on the cases of its
//! documentation, with and without schemas. Records are written as Kafka's JsonConverter
//! writes them (`{"schema":...,"payload":...}` with schemas), so inputs and expected
//! outputs are exact and readable.

use std::sync::Arc;

use connect_core::convert::{Converter, JsonConverter};
use connect_core::properties::Properties;
use connect_core::registry::Registry;
use connect_core::{Record, Value};

const T: &str = "org.apache.kafka.connect.transforms.";

/// The chain of `pairs` (keys without the `transforms.x.` prefix are taken as is).
fn chain(pairs: &[(&str, &str)]) -> connect_core::transform::TransformChain {
    Registry::new()
        .build_transforms(&Properties::from_pairs(pairs.iter().copied()))
        .expect("valid transform config")
}

fn one(class: &str, options: &[(&str, &str)]) -> connect_core::transform::TransformChain {
    let class = format!("{T}{class}");
    let mut pairs = vec![("transforms", "x"), ("transforms.x.type", class.as_str())];
    let keys: Vec<(String, &str)> = options
        .iter()
        .map(|(k, v)| (format!("transforms.x.{k}"), *v))
        .collect();
    pairs.extend(keys.iter().map(|(k, v)| (k.as_str(), *v)));
    chain(&pairs)
}

fn config_error(class: &str, options: &[(&str, &str)]) -> String {
    let class = format!("{T}{class}");
    let mut pairs = vec![
        ("transforms".to_owned(), "x".to_owned()),
        ("transforms.x.type".to_owned(), class),
    ];
    pairs.extend(
        options
            .iter()
            .map(|(k, v)| (format!("transforms.x.{k}"), (*v).to_owned())),
    );
    Registry::new()
        .build_transforms(&Properties::from_pairs(pairs))
        .unwrap_err()
        .to_string()
}

fn parse(schemas: bool, json: &str) -> (Option<Arc<connect_core::Schema>>, Value) {
    let bytes = squash(json);
    JsonConverter::new(schemas)
        .deserialize("t", Some(bytes.as_bytes()))
        .expect("test JSON")
}

fn render(schemas: bool, schema: Option<&Arc<connect_core::Schema>>, value: &Value) -> String {
    let mut out = Vec::new();
    if !JsonConverter::new(schemas)
        .serialize("t", schema, value, &mut out)
        .expect("serializable")
    {
        return "null".to_owned();
    }
    String::from_utf8(out).unwrap()
}

/// A record whose value is `value` (JSON, with a schema when `schemas`).
fn value_record(schemas: bool, value: &str) -> Record {
    let (schema, value) = parse(schemas, value);
    Record::new(Arc::from("orders"), schema, value)
}

/// Applies `chain` and renders the value (with schema when `schemas`).
fn value_after(
    chain: &connect_core::transform::TransformChain,
    schemas: bool,
    value: &str,
) -> String {
    let out = chain
        .apply(value_record(schemas, value))
        .expect("transform")
        .expect("kept");
    render(schemas, out.value_schema.as_ref(), &out.value)
}

/// JSON written over several indented lines, on one line.
fn squash(json: &str) -> String {
    json.lines().map(str::trim).collect()
}

const ROW: &str = r#"{"schema":{"type":"struct","fields":[
    {"type":"int32","optional":false,"field":"id"},
    {"type":"string","optional":true,"field":"email"},
    {"type":"int64","optional":true,"field":"score"}],"optional":false,"name":"shop.Order"},
  "payload":{"id":7,"email":"a@b.c","score":42}}"#;

#[test]
fn insert_field_adds_topic_static_and_timestamp_fields() {
    let t = one(
        "InsertField$Value",
        &[
            ("topic.field", "src_topic!"),
            ("timestamp.field", "ts"),
            ("static.field", "data_source"),
            ("static.value", "test-file-source"),
        ],
    );
    let rec = value_record(true, ROW).with_timestamp_ms(1_500_000_000_000);
    let out = t.apply(rec).unwrap().unwrap();
    assert_eq!(
        render(true, out.value_schema.as_ref(), &out.value),
        squash(
            r#"{"schema":{"type":"struct","fields":[
            {"type":"int32","optional":false,"field":"id"},
            {"type":"string","optional":true,"field":"email"},
            {"type":"int64","optional":true,"field":"score"},
            {"type":"string","optional":false,"field":"src_topic"},
            {"type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp","version":1,"field":"ts"},
            {"type":"string","optional":true,"field":"data_source"}],"optional":false,"name":"shop.Order"},
          "payload":{"id":7,"email":"a@b.c","score":42,"src_topic":"orders","ts":1500000000000,"data_source":"test-file-source"}}"#
        )
    );
    // Schemaless: the map gains the keys.
    let out = t
        .apply(value_record(false, r#"{"line":"hello"}"#).with_timestamp_ms(5))
        .unwrap()
        .unwrap();
    assert_eq!(
        render(false, None, &out.value),
        r#"{"line":"hello","src_topic":"orders","ts":5,"data_source":"test-file-source"}"#
    );
    // A tombstone passes; a required field without a value is an error naming it.
    let tomb = Record::new(Arc::from("orders"), None, Value::Null);
    assert!(t.apply(tomb).unwrap().unwrap().is_tombstone());
    let p = one("InsertField$Value", &[("partition.field", "p!")]);
    let e = p.apply(value_record(true, ROW)).unwrap_err().to_string();
    assert!(e.contains("`p`"), "{e}");
    let o = one("InsertField$Value", &[("offset.field", "off")]);
    let e = o.apply(value_record(true, ROW)).unwrap_err().to_string();
    assert!(e.contains("offset.field"), "{e}");
    let e = config_error("InsertField$Value", &[]);
    assert!(e.contains("transforms.x.topic.field"), "{e}");
}

#[test]
fn replace_field_includes_excludes_and_renames() {
    let t = one(
        "ReplaceField$Value",
        &[("exclude", "score"), ("renames", "id:order_id,email:mail")],
    );
    assert_eq!(
        value_after(&t, true, ROW),
        squash(
            r#"{"schema":{"type":"struct","fields":[
            {"type":"int32","optional":false,"field":"order_id"},
            {"type":"string","optional":true,"field":"mail"}],"optional":false,"name":"shop.Order"},
          "payload":{"order_id":7,"mail":"a@b.c"}}"#
        )
    );
    let t = one("ReplaceField$Value", &[("include", "id,score")]);
    assert_eq!(
        value_after(&t, false, r#"{"id":1,"email":"x","score":2}"#),
        r#"{"id":1,"score":2}"#
    );
    // The older names still work.
    let t = one("ReplaceField$Value", &[("blacklist", "email")]);
    assert_eq!(
        value_after(&t, false, r#"{"id":1,"email":"x"}"#),
        r#"{"id":1}"#
    );
    let e = config_error("ReplaceField$Value", &[("renames", "a")]);
    assert!(
        e.contains("transforms.x.renames") && e.contains("old:new"),
        "{e}"
    );
}

#[test]
fn mask_field_writes_empty_values_or_the_replacement() {
    let t = one("MaskField$Value", &[("fields", "email,score")]);
    assert_eq!(
        value_after(&t, false, r#"{"email":"x@y","id":1,"score":9}"#),
        r#"{"email":"","id":1,"score":0}"#
    );
    let t = one(
        "MaskField$Value",
        &[("fields", "score"), ("replacement", "-1")],
    );
    assert!(
        value_after(&t, true, ROW).ends_with(r#""payload":{"id":7,"email":"a@b.c","score":-1}}"#)
    );
    let t = one(
        "MaskField$Value",
        &[("fields", "score"), ("replacement", "n/a")],
    );
    let e = t.apply(value_record(true, ROW)).unwrap_err().to_string();
    assert!(e.contains("score") && e.contains("n/a"), "{e}");
}

#[test]
fn value_to_key_builds_the_key_from_value_fields() {
    let t = one("ValueToKey", &[("fields", "id,email")]);
    let out = t.apply(value_record(true, ROW)).unwrap().unwrap();
    assert_eq!(
        render(true, out.key_schema.as_ref(), &out.key),
        squash(
            r#"{"schema":{"type":"struct","fields":[
            {"type":"int32","optional":false,"field":"id"},
            {"type":"string","optional":true,"field":"email"}],"optional":false},
          "payload":{"id":7,"email":"a@b.c"}}"#
        )
    );
    let out = t
        .apply(value_record(false, r#"{"id":3,"email":"e","x":1}"#))
        .unwrap()
        .unwrap();
    assert_eq!(render(false, None, &out.key), r#"{"id":3,"email":"e"}"#);
    let t = one("ValueToKey", &[("fields", "nope")]);
    let e = t.apply(value_record(true, ROW)).unwrap_err().to_string();
    assert!(e.contains("`nope`"), "{e}");
}

#[test]
fn extract_field_and_hoist_field_are_inverse() {
    let hoist = one("HoistField$Value", &[("field", "line")]);
    let hoisted = value_after(
        &hoist,
        true,
        r#"{"schema":{"type":"string","optional":false},"payload":"hi"}"#,
    );
    assert_eq!(
        hoisted,
        r#"{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"line"}],"optional":false},"payload":{"line":"hi"}}"#
    );
    let extract = one("ExtractField$Value", &[("field", "line")]);
    assert_eq!(
        value_after(&extract, true, &hoisted),
        r#"{"schema":{"type":"string","optional":false},"payload":"hi"}"#
    );
    assert_eq!(value_after(&hoist, false, "42"), r#"{"line":42}"#);
    assert_eq!(value_after(&extract, false, r#"{"line":42}"#), "42");
    // V2 syntax follows a dotted path into nested structs.
    let nested = r#"{"schema":{"type":"struct","fields":[{"type":"struct","fields":[
        {"type":"int32","optional":false,"field":"id"}],"optional":true,"field":"after"}],"optional":false},
      "payload":{"after":{"id":5}}}"#;
    let t = one(
        "ExtractField$Value",
        &[("field", "after.id"), ("field.syntax.version", "V2")],
    );
    assert_eq!(
        value_after(&t, true, nested),
        r#"{"schema":{"type":"int32","optional":false},"payload":5}"#
    );
    let t = one("ExtractField$Value", &[("field", "nope")]);
    let e = t.apply(value_record(true, ROW)).unwrap_err().to_string();
    assert!(e.contains("unknown field: nope"), "{e}");
}

#[test]
fn set_schema_metadata_renames_and_versions_the_schema() {
    let t = one(
        "SetSchemaMetadata$Value",
        &[("schema.name", "shop.OrderV2"), ("schema.version", "2")],
    );
    let out = value_after(&t, true, ROW);
    assert!(
        out.contains(r#""optional":false,"name":"shop.OrderV2","version":2},"payload":{"id":7"#),
        "{out}"
    );
    let e = config_error("SetSchemaMetadata$Value", &[("schema.version", "two")]);
    assert!(e.contains("transforms.x.schema.version"), "{e}");
}

#[test]
fn cast_converts_fields_and_whole_values_as_java_does() {
    let t = one(
        "Cast$Value",
        &[("spec", "id:string,score:float64,email:boolean")],
    );
    assert_eq!(
        value_after(&t, true, ROW),
        squash(
            r#"{"schema":{"type":"struct","fields":[
            {"type":"string","optional":false,"field":"id"},
            {"type":"boolean","optional":true,"field":"email"},
            {"type":"double","optional":true,"field":"score"}],"optional":false,"name":"shop.Order"},
          "payload":{"id":"7","email":false,"score":42.0}}"#
        )
    );
    let t = one("Cast$Value", &[("spec", "a:int8,b:int32,c:string,d:int64")]);
    assert_eq!(
        value_after(&t, false, r#"{"a":300,"b":"12","c":1.0E10,"d":-2.9}"#),
        r#"{"a":44,"b":12,"c":"1.0E10","d":-2}"#
    );
    let whole = one("Cast$Value", &[("spec", "int64")]);
    assert_eq!(value_after(&whole, false, r#""123""#), "123");
    let bad = one("Cast$Value", &[("spec", "int32")]);
    let e = bad
        .apply(value_record(false, r#""twelve""#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("twelve") && e.contains("int32"), "{e}");
    // Decimal (base64 of the unscaled 12345, scale 2) to string and double.
    let dec = r#"{"schema":{"type":"struct","fields":[{"type":"bytes","optional":false,
        "name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2"},"field":"p"}],"optional":false},
      "payload":{"p":"MDk="}}"#;
    let t = one("Cast$Value", &[("spec", "p:string")]);
    assert!(value_after(&t, true, dec).ends_with(r#""payload":{"p":"123.45"}}"#));
    let t = one("Cast$Value", &[("spec", "p:float64")]);
    assert!(value_after(&t, true, dec).ends_with(r#""payload":{"p":123.45}}"#));
    let e = config_error("Cast$Value", &[("spec", "a:decimal")]);
    assert!(
        e.contains("transforms.x.spec") && e.contains("decimal"),
        "{e}"
    );
}

#[test]
fn flatten_joins_nested_names_and_makes_children_of_optional_structs_optional() {
    let nested = r#"{"schema":{"type":"struct","fields":[
        {"type":"int32","optional":false,"field":"id"},
        {"type":"struct","fields":[
            {"type":"string","optional":false,"field":"city"},
            {"type":"struct","fields":[{"type":"double","optional":false,"field":"lat"}],"optional":false,"field":"geo"}],
         "optional":true,"field":"address"}],"optional":false,"name":"shop.Customer"},
      "payload":{"id":1,"address":{"city":"Oslo","geo":{"lat":59.9}}}}"#;
    let t = one("Flatten$Value", &[("delimiter", "_")]);
    assert_eq!(
        value_after(&t, true, nested),
        squash(
            r#"{"schema":{"type":"struct","fields":[
            {"type":"int32","optional":false,"field":"id"},
            {"type":"string","optional":true,"field":"address_city"},
            {"type":"double","optional":true,"field":"address_geo_lat"}],"optional":false,"name":"shop.Customer"},
          "payload":{"id":1,"address_city":"Oslo","address_geo_lat":59.9}}"#
        )
    );
    let null_address = nested.replace(r#"{"city":"Oslo","geo":{"lat":59.9}}"#, "null");
    assert!(value_after(&t, true, &null_address)
        .ends_with(r#""payload":{"id":1,"address_city":null,"address_geo_lat":null}}"#));
    let t = one("Flatten$Value", &[]);
    assert_eq!(
        value_after(&t, false, r#"{"a":{"b":{"c":1},"d":[1,2]},"e":true}"#),
        r#"{"a.b.c":1,"a.d":[1,2],"e":true}"#
    );
}

#[test]
fn timestamp_converter_converts_between_all_representations() {
    let ts = r#"{"schema":{"type":"struct","fields":[{"type":"int64","optional":false,
        "name":"org.apache.kafka.connect.data.Timestamp","version":1,"field":"at"}],"optional":false},
      "payload":{"at":1496671628123}}"#;
    let t = one(
        "TimestampConverter$Value",
        &[
            ("field", "at"),
            ("target.type", "string"),
            ("format", "yyyy-MM-dd HH:mm:ss.SSS"),
        ],
    );
    assert_eq!(
        value_after(&t, true, ts),
        r#"{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"at"}],"optional":false},"payload":{"at":"2017-06-05 14:07:08.123"}}"#
    );
    let back = one(
        "TimestampConverter$Value",
        &[
            ("field", "at"),
            ("target.type", "unix"),
            ("format", "yyyy-MM-dd HH:mm:ss.SSS"),
            ("unix.precision", "microseconds"),
        ],
    );
    assert_eq!(
        value_after(&back, false, r#"{"at":"2017-06-05 14:07:08.123"}"#),
        r#"{"at":1496671628123000}"#
    );
    let date = one(
        "TimestampConverter$Value",
        &[("field", "at"), ("target.type", "Date")],
    );
    assert!(value_after(&date, true, ts).ends_with(r#""name":"org.apache.kafka.connect.data.Date","version":1,"field":"at"}],"optional":false},"payload":{"at":17322}}"#));
    let whole = one(
        "TimestampConverter$Value",
        &[("target.type", "Timestamp"), ("unix.precision", "seconds")],
    );
    assert_eq!(
        value_after(
            &whole,
            true,
            r#"{"schema":{"type":"int64","optional":false},"payload":1496671628}"#
        ),
        r#"{"schema":{"type":"int64","optional":false,"name":"org.apache.kafka.connect.data.Timestamp","version":1},"payload":1496671628000}"#
    );
    let e = config_error("TimestampConverter$Value", &[("target.type", "string")]);
    assert!(e.contains("transforms.x.format"), "{e}");
    let e = config_error("TimestampConverter$Value", &[("target.type", "Instant")]);
    assert!(e.contains("transforms.x.target.type"), "{e}");
    let bad = back
        .apply(value_record(false, r#"{"at":"yesterday"}"#))
        .unwrap_err()
        .to_string();
    assert!(bad.contains("`yesterday` does not match"), "{bad}");
}

#[test]
fn timestamp_router_routes_by_the_record_time() {
    let t = one(
        "TimestampRouter",
        &[
            ("topic.format", "foo-${topic}-${timestamp}"),
            ("timestamp.format", "yyyyMM"),
        ],
    );
    let out = t
        .apply(value_record(false, "1").with_timestamp_ms(1_496_671_628_123))
        .unwrap()
        .unwrap();
    assert_eq!(&*out.topic, "foo-orders-201706");
    let e = t.apply(value_record(false, "1")).unwrap_err().to_string();
    assert!(e.contains("no timestamp"), "{e}");
    let e = config_error("TimestampRouter", &[("timestamp.format", "YYYY")]);
    assert!(
        e.contains("transforms.x.timestamp.format") && e.contains("`Y`"),
        "{e}"
    );
}

#[test]
fn header_transforms_insert_drop_and_copy_or_move_fields() {
    let t = chain(&[
        ("transforms", "ins,from,drop"),
        ("transforms.ins.type", &format!("{T}InsertHeader")),
        ("transforms.ins.header", "version"),
        ("transforms.ins.value.literal", "42"),
        ("transforms.from.type", &format!("{T}HeaderFrom$Value")),
        ("transforms.from.fields", "id,email"),
        ("transforms.from.headers", "order_id,mail"),
        ("transforms.from.operation", "move"),
        ("transforms.drop.type", &format!("{T}DropHeaders")),
        ("transforms.drop.headers", "mail"),
    ]);
    let out = t.apply(value_record(true, ROW)).unwrap().unwrap();
    let headers: Vec<(&str, &Value, Option<String>)> = out
        .headers
        .iter()
        .map(|h| {
            (
                &*h.key,
                &h.value,
                h.schema.as_ref().map(|s| s.json().to_owned()),
            )
        })
        .collect();
    assert_eq!(
        headers,
        vec![
            (
                "version",
                &Value::Int8(42),
                Some(r#"{"type":"int8","optional":false}"#.to_owned())
            ),
            (
                "order_id",
                &Value::Int32(7),
                Some(r#"{"type":"int32","optional":false}"#.to_owned())
            ),
        ]
    );
    assert!(
        render(true, out.value_schema.as_ref(), &out.value).ends_with(r#""payload":{"score":42}}"#)
    );
    let e = config_error(
        "HeaderFrom$Value",
        &[("fields", "a,b"), ("headers", "x"), ("operation", "copy")],
    );
    assert!(e.contains("transforms.x.headers"), "{e}");
    let e = config_error(
        "HeaderFrom$Value",
        &[("fields", "a"), ("headers", "x"), ("operation", "swap")],
    );
    assert!(e.contains("transforms.x.operation"), "{e}");
}

#[test]
fn key_forms_work_on_the_key() {
    let t = one("ExtractField$Key", &[("field", "id")]);
    let rec = value_record(false, "1")
        .with_key(None, Value::Map(vec![(Value::from("id"), Value::Int64(9))]));
    let out = t.apply(rec).unwrap().unwrap();
    assert_eq!(out.key, Value::Int64(9));
    assert_eq!(out.value, Value::Int64(1));
}

#[test]
fn unknown_types_and_options_are_named() {
    let e = config_error("NoSuchTransform", &[]);
    assert!(
        e.contains("transforms.x.type") && e.contains("NoSuchTransform"),
        "{e}"
    );
    let e = config_error("HoistField$Value", &[("field", "f"), ("feild", "g")]);
    assert!(e.contains("transforms.x.feild"), "{e}");
}

mod debezium_routers {
    use super::*;
    use connect_core::envelope::EnvelopeSchema;
    use connect_core::{Op, Schema, SchemaType, Struct};
    use std::time::{Duration, UNIX_EPOCH};

    const D: &str = "io.debezium.transforms.";

    fn source() -> (Arc<Schema>, Struct) {
        let s = Schema::struct_builder()
            .name("io.debezium.connector.postgresql.Source")
            .field("table", Schema::required(SchemaType::String))
            .build();
        let v = Struct::new(s.clone(), vec![Value::from("outboxevent")]).unwrap();
        (s, v)
    }

    fn outbox_row_schema() -> Arc<Schema> {
        Schema::struct_builder()
            .name("dbserver1.public.outboxevent.Value")
            .optional()
            .field("id", Schema::required(SchemaType::String))
            .field("aggregatetype", Schema::required(SchemaType::String))
            .field("aggregateid", Schema::required(SchemaType::String))
            .field("type", Schema::required(SchemaType::String))
            .field(
                "payload",
                Schema::builder(SchemaType::String)
                    .optional()
                    .name("io.debezium.data.Json")
                    .version(1)
                    .build(),
            )
            .build()
    }

    fn outbox_event(op: Op, payload: Option<&str>) -> Record {
        let row_schema = outbox_row_schema();
        let (src_schema, src) = source();
        let env = EnvelopeSchema::new(
            "dbserver1.public.outboxevent",
            row_schema.clone(),
            src_schema,
        )
        .unwrap();
        let row = Struct::new(
            row_schema,
            vec![
                Value::from("406c07f3-26f0-4eea-a50c-109940064b8f"),
                Value::from("customer"),
                Value::from("1"),
                Value::from("CustomerCreated"),
                Value::from(payload),
            ],
        )
        .unwrap();
        let (before, after) = match op {
            Op::Delete => (Some(row), None),
            Op::Update => (Some(row.clone()), Some(row)),
            _ => (None, Some(row)),
        };
        let value = env.event(
            op,
            before,
            after,
            src,
            None,
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        );
        Record::new(
            Arc::from("dbserver1.public.outboxevent"),
            Some(env.schema().clone()),
            value,
        )
    }

    fn outbox(options: &[(&str, &str)]) -> connect_core::transform::TransformChain {
        let class = format!("{D}outbox.EventRouter");
        let mut pairs = vec![
            ("transforms".to_owned(), "outbox".to_owned()),
            ("transforms.outbox.type".to_owned(), class),
        ];
        pairs.extend(
            options
                .iter()
                .map(|(k, v)| (format!("transforms.outbox.{k}"), (*v).to_owned())),
        );
        Registry::new()
            .build_transforms(&Properties::from_pairs(pairs))
            .unwrap()
    }

    #[test]
    fn outbox_rows_become_events_on_the_aggregate_topic() {
        let t = outbox(&[("table.fields.additional.placement", "type:header:eventType")]);
        let out = t
            .apply(outbox_event(Op::Create, Some(r#"{"name":"Ann"}"#)))
            .unwrap()
            .unwrap();
        assert_eq!(&*out.topic, "outbox.event.customer");
        assert_eq!(out.key, Value::from("1"));
        assert_eq!(
            render(true, out.value_schema.as_ref(), &out.value),
            r#"{"schema":{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1},"payload":"{\"name\":\"Ann\"}"}"#
        );
        assert_eq!(out.timestamp_ms, Some(1_700_000_000_123));
        let headers: Vec<(&str, &Value)> =
            out.headers.iter().map(|h| (&*h.key, &h.value)).collect();
        assert_eq!(
            headers,
            [
                ("id", &Value::from("406c07f3-26f0-4eea-a50c-109940064b8f")),
                ("eventType", &Value::from("CustomerCreated")),
            ]
        );
        // Deletes, tombstones and (by default) updates of the outbox table are dropped.
        assert!(t
            .apply(outbox_event(Op::Delete, Some("{}")))
            .unwrap()
            .is_none());
        assert!(t
            .apply(outbox_event(Op::Update, Some("{}")))
            .unwrap()
            .is_none());
        assert!(t
            .apply(Record::new(Arc::from("x"), None, Value::Null))
            .unwrap()
            .is_none());
        let fatal = outbox(&[("table.op.invalid.behavior", "fatal")]);
        let e = fatal
            .apply(outbox_event(Op::Update, Some("{}")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("table.op.invalid.behavior"), "{e}");
    }

    #[test]
    fn outbox_envelope_placement_and_routing_options() {
        let t = outbox(&[
            (
                "table.fields.additional.placement",
                "type:envelope:eventType",
            ),
            ("route.topic.replacement", "${routedByValue}.events"),
            ("route.tombstone.on.empty.payload", "true"),
        ]);
        let out = t
            .apply(outbox_event(Op::Create, Some("{}")))
            .unwrap()
            .unwrap();
        assert_eq!(&*out.topic, "customer.events");
        assert_eq!(
            render(true, out.value_schema.as_ref(), &out.value),
            squash(
                r#"{"schema":{"type":"struct","fields":[
            {"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"payload"},
            {"type":"string","optional":false,"field":"eventType"}],"optional":false,"name":"dbserver1.public.outboxevent.customer.Value"},
          "payload":{"payload":"{}","eventType":"CustomerCreated"}}"#
            )
        );
        let out = t.apply(outbox_event(Op::Create, None)).unwrap().unwrap();
        assert!(out.is_tombstone());
        assert_eq!(&*out.topic, "customer.events");
        let bad = outbox(&[("table.field.event.payload", "body")]);
        let e = bad
            .apply(outbox_event(Op::Create, Some("{}")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`body`") && e.contains("table.field.event.payload"),
            "{e}"
        );
    }

    fn shard_event(topic: &str, op: Op) -> Record {
        let row = Schema::struct_builder()
            .name(format!("{topic}.Value"))
            .optional()
            .field("id", Schema::required(SchemaType::Int32))
            .build();
        let key_schema = Schema::struct_builder()
            .name(format!("{topic}.Key"))
            .field("id", Schema::required(SchemaType::Int32))
            .build();
        let (src_schema, src) = source();
        let env = EnvelopeSchema::new(topic, row.clone(), src_schema).unwrap();
        let after = Struct::new(row, vec![Value::Int32(5)]).unwrap();
        let value = env.event(op, None, Some(after), src, None, UNIX_EPOCH);
        let key = Value::Struct(Struct::new(key_schema.clone(), vec![Value::Int32(5)]).unwrap());
        Record::new(Arc::from(topic), Some(env.schema().clone()), value)
            .with_key(Some(key_schema), key)
    }

    #[test]
    fn by_logical_table_router_merges_shards_and_keeps_keys_unique() {
        let class = format!("{D}ByLogicalTableRouter");
        let t = chain(&[
            ("transforms", "route"),
            ("transforms.route.type", &class),
            ("transforms.route.topic.regex", "(.*)customers_shard(.*)"),
            (
                "transforms.route.topic.replacement",
                "$1customers_all_shards",
            ),
            (
                "transforms.route.key.field.regex",
                "(.*)customers_shard(.*)",
            ),
            ("transforms.route.key.field.replacement", "$2"),
        ]);
        let out = t
            .apply(shard_event("myserver.mydb.customers_shard1", Op::Create))
            .unwrap()
            .unwrap();
        assert_eq!(&*out.topic, "myserver.mydb.customers_all_shards");
        assert_eq!(
            render(true, out.key_schema.as_ref(), &out.key),
            squash(
                r#"{"schema":{"type":"struct","fields":[
            {"type":"int32","optional":false,"field":"id"},
            {"type":"string","optional":false,"field":"__dbz__physicalTableIdentifier"}],
            "optional":false,"name":"myserver.mydb.customers_all_shards.Key"},
          "payload":{"id":5,"__dbz__physicalTableIdentifier":"1"}}"#
            )
        );
        let schema = out.value_schema.as_ref().unwrap();
        assert_eq!(
            schema.name(),
            Some("myserver.mydb.customers_all_shards.Envelope")
        );
        assert_eq!(schema.version(), Some(2));
        let after = out
            .value
            .as_struct()
            .unwrap()
            .get("after")
            .and_then(Value::as_struct)
            .unwrap();
        assert_eq!(
            after.schema().name(),
            Some("myserver.mydb.customers_all_shards.Value")
        );
        assert_eq!(after.get("id"), Some(&Value::Int32(5)));
        // Other topics pass; a tombstone's key is rewritten too.
        let other = t
            .apply(shard_event("myserver.mydb.orders", Op::Create))
            .unwrap()
            .unwrap();
        assert_eq!(&*other.topic, "myserver.mydb.orders");
        let mut tomb = shard_event("myserver.mydb.customers_shard2", Op::Delete);
        tomb.value = Value::Null;
        tomb.value_schema = None;
        let out = t.apply(tomb).unwrap().unwrap();
        assert!(out.is_tombstone());
        assert_eq!(
            out.key
                .as_struct()
                .unwrap()
                .get("__dbz__physicalTableIdentifier"),
            Some(&Value::from("2"))
        );
    }
}

#[test]
fn outbox_json_payloads_expand_into_structs() {
    use connect_core::envelope::EnvelopeSchema;
    use connect_core::{Op, Schema, SchemaType, Struct};
    let row = Schema::struct_builder()
        .name("srv.public.outbox.Value")
        .optional()
        .field("id", Schema::required(SchemaType::String))
        .field("aggregatetype", Schema::required(SchemaType::String))
        .field("aggregateid", Schema::required(SchemaType::String))
        .field("payload", Schema::optional(SchemaType::String))
        .build();
    let source = Schema::struct_builder()
        .name("io.debezium.connector.postgresql.Source")
        .build();
    let env = EnvelopeSchema::new("srv.public.outbox", row.clone(), source.clone()).unwrap();
    let event = |payload: &str| {
        let after = Struct::new(
            row.clone(),
            vec![
                Value::from("e1"),
                Value::from("order"),
                Value::from("7"),
                Value::from(payload),
            ],
        )
        .unwrap();
        let v = env.event(
            Op::Create,
            None,
            Some(after),
            Struct::new(source.clone(), vec![]).unwrap(),
            None,
            std::time::UNIX_EPOCH,
        );
        Record::new(
            Arc::from("srv.public.outbox"),
            Some(env.schema().clone()),
            v,
        )
    };
    let t = chain(&[
        ("transforms", "outbox"),
        (
            "transforms.outbox.type",
            "io.debezium.transforms.outbox.EventRouter",
        ),
        ("transforms.outbox.table.expand.json.payload", "true"),
    ]);
    let out = t
        .apply(event(r#"{"total":12,"lines":[{"sku":"a"}]}"#))
        .unwrap()
        .unwrap();
    assert_eq!(
        render(true, out.value_schema.as_ref(), &out.value),
        squash(
            r#"{"schema":{"type":"struct","fields":[{"type":"int32","optional":true,"field":"total"},
            {"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":true,"field":"sku"}],"optional":true},
             "optional":true,"field":"lines"}],"optional":true},"payload":{"total":12,"lines":[{"sku":"a"}]}}"#
        )
    );
    // Text that is not a JSON object stays text.
    let out = t.apply(event("not json")).unwrap().unwrap();
    assert_eq!(out.value, Value::from("not json"));
}
