//! Runnable examples of connect live beside this file (`cargo run --example quickstart`).
