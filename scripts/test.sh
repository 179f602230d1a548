#!/usr/bin/env bash
# The README's test command: installs and starts what the tests need (idempotent, see
# scripts/services.sh), then checks formatting and lints and runs the whole suite.
#
# Environment:
#   CONNECT_KILL_RUNS   kill -9 / restart cycles of the crash tests (default 20)
#   CONNECT_SKIP_SERVICES=1  do not touch the local servers (they are already set up)
set -euo pipefail
cd "$(dirname "$0")/.."

export CONNECT_KILL_RUNS=${CONNECT_KILL_RUNS:-20}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

if [ "${CONNECT_SKIP_SERVICES:-0}" != 1 ]; then
  # The broker's first install takes minutes: it runs while the databases start and the
  # workspace builds, and the tests wait for it.
  as_root bash scripts/services.sh kafka &
  kafka_setup=$!
  as_root bash scripts/services.sh
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== benches build (not run)"
cargo test --workspace --benches --no-run --quiet
if [ -n "${kafka_setup:-}" ]; then
  echo "== waiting for the Kafka broker"
  wait "$kafka_setup"
fi
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  # Doc tests first, so that the run closes on nextest's summary of the whole suite.
  cargo test --workspace --doc --quiet
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
