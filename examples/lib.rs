//! Runnable examples of connect live beside this file (`cargo run --example quickstart`).
//! This library holds what they share.

/// Engine logs on stderr, filtered by `RUST_LOG` (e.g. `RUST_LOG=connect_core=debug`),
/// so that stdout carries only the example's output.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
}

/// The environment variable `key`, or `default` when it is not set.
pub fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}
