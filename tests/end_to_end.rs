//! Workspace-level end-to-end tests: pipelines built from Debezium / Kafka Connect
//! properties files, run against real files.

use std::time::Duration;

use connect_core::{Engine, Properties, Registry, StringConverter};
use connect_file::{FileSink, FileSinkConfig};

fn registry() -> Registry {
    let mut r = Registry::new();
    connect_file::register(&mut r);
    r
}

/// A properties file with transforms and predicates builds a pipeline that copies a file,
/// routes topics, filters by predicate and commits its offsets to a file.
#[tokio::test]
async fn properties_file_builds_a_working_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    let offsets = dir.path().join("offsets.json");
    std::fs::write(&input, "alpha\nbeta\ngamma\n").unwrap();
    let text = format!(
        "name=e2e\n\
         connector.class=org.apache.kafka.connect.file.FileStreamSourceConnector\n\
         file={}\n\
         topic=raw.lines\n\
         follow=false\n\
         offset.storage=org.apache.kafka.connect.storage.FileOffsetBackingStore\n\
         offset.storage.file.filename={}\n\
         offset.flush.interval.ms=10\n\
         transforms=route,drop\n\
         transforms.route.type=org.apache.kafka.connect.transforms.RegexRouter\n\
         transforms.route.regex=raw\\\\.(.*)\n\
         transforms.route.replacement=clean_$1\n\
         transforms.drop.type=org.apache.kafka.connect.transforms.Filter\n\
         transforms.drop.predicate=isOther\n\
         predicates=isOther\n\
         predicates.isOther.type=org.apache.kafka.connect.transforms.predicates.TopicNameMatches\n\
         predicates.isOther.pattern=other.*\n",
        input.display(),
        offsets.display()
    );
    let props = Properties::parse(&text).unwrap();
    let built = registry().build_pipeline(&props).unwrap();
    assert_eq!(built.name, "e2e");
    let sink = FileSink::new(
        FileSinkConfig::new(&output)
            .with_converter(StringConverter)
            .with_topics(vec!["clean_lines".into()]),
    )
    .unwrap();
    let engine = Engine::builder()
        .name(&built.name)
        .shutdown_timeout(Duration::from_secs(10))
        .pipeline(built.pipeline.into_connector(sink))
        .start()
        .await
        .unwrap();
    let report = engine.wait().await.unwrap();
    assert!(report.drained() && report.committed(), "{report:?}");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "alpha\nbeta\ngamma\n"
    );
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&offsets).unwrap()).unwrap();
    let key = format!(
        "[\"e2e\",{{\"filename\":{}}}]",
        serde_json::to_string(&input.to_string_lossy()).unwrap()
    );
    assert_eq!(stored[&key]["position"], 17, "{stored}");
}

/// Every unknown or invalid key is rejected by name.
#[test]
fn bad_properties_are_named() {
    let r = registry();
    let base = "connector.class=org.apache.kafka.connect.file.FileStreamSourceConnector\nfile=/tmp/x\ntopic=t\n";
    let cases: &[(&str, &str)] = &[
        ("tasks.max=abc\n", "tasks.max"),
        ("fiel=/tmp/typo\n", "fiel"),
        ("errors.tolerance=some\n", "errors.tolerance"),
        ("max.queue.bytes=1\n", "max.queue.bytes"),
        ("transforms=x\n", "transforms.x.type"),
        (
            "transforms=x\ntransforms.x.type=com.example.Nope\n",
            "transforms.x.type",
        ),
        (
            "transforms=x\ntransforms.x.type=org.apache.kafka.connect.transforms.RegexRouter\ntransforms.x.regex=(\ntransforms.x.replacement=y\n",
            "transforms.x.regex",
        ),
        (
            "offset.storage=org.apache.kafka.connect.storage.FileOffsetBackingStore\n",
            "offset.storage.file.filename",
        ),
        ("value.converter=com.example.Avro\n", "value.converter"),
        ("batch.size=0\n", "batch.size"),
    ];
    for (extra, key) in cases {
        let props = Properties::parse(&format!("{base}{extra}")).unwrap();
        let err = r.build_pipeline(&props).unwrap_err().to_string();
        assert!(err.contains(&format!("`{key}`")), "{extra:?}: {err}");
    }
    let props = Properties::parse("connector.class=com.example.Missing\n").unwrap();
    let err = r.build_pipeline(&props).unwrap_err().to_string();
    assert!(
        err.contains("connector.class") && err.contains("FileStreamSourceConnector"),
        "{err}"
    );
}
