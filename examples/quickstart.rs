//! Quickstart: a real pipeline with no server. Each run appends three lines to
//! `target/quickstart/input.log`, then a file source reads the file into Debezium-style
//! JSON on stdout, with its offsets in `target/quickstart/offsets.json`.
//!
//! Run it twice: the second run prints only the three new lines, because the engine
//! resumes after the last committed line. Delivery is at-least-once: a batch is acked
//! after it was printed, and only acked batches move the stored offset.
//!
//! ```text
//! cargo run --example quickstart
//! RUST_LOG=connect_core=debug cargo run --example quickstart   # with the engine's logs
//! ```

use std::io::Write;
use std::path::Path;

use connect_core::{Engine, FileOffsetStore};
use connect_file::{FileSource, FileSourceConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    connect_examples::init_logging();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/quickstart");
    std::fs::create_dir_all(&dir)?;
    let input = dir.join("input.log");
    let offsets = dir.join("offsets.json");
    let run = append_lines(&input)?;

    let source =
        FileSource::new(FileSourceConfig::new(&input, "quickstart.lines").with_follow(false))?;
    let (engine, mut batches) = Engine::builder()
        .name("quickstart")
        .source(source)
        .offsets(FileOffsetStore::open(&offsets)?)
        .into_channel(16)
        .start()
        .await?;

    let mut delivered = 0;
    while let Some(batch) = batches.recv().await {
        for json in batch.to_json()?.into_iter().flatten() {
            println!("{json}");
        }
        delivered += batch.len();
        batch.ack(); // only now may the offsets move past these lines
    }
    let report = engine.wait().await?;
    eprintln!(
        "run {run}: delivered {delivered} new line(s); drained={} committed={}; offsets in {}",
        report.drained(),
        report.committed(),
        offsets.display()
    );
    Ok(())
}

/// Appends three lines and returns the run number (lines already in the file / 3 + 1).
fn append_lines(input: &Path) -> std::io::Result<usize> {
    let existing = std::fs::read_to_string(input)
        .unwrap_or_default()
        .lines()
        .count();
    let run = existing / 3 + 1;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(input)?;
    for i in 1..=3 {
        writeln!(f, "run {run} line {i}")?;
    }
    Ok(run)
}
