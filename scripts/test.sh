#!/usr/bin/env bash
# Runs everything CI runs: formatting, lints, the build, unit tests and end-to-end tests
# (ksqlDB conformance with its no-regression list, riffle's own QTT tests, the examples, the CLI,
# and the Kafka tests against a tansu broker this script starts on loopback and stops at exit).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== build"
cargo build --workspace --bins
echo "== kafka broker (tansu) for the Kafka tests"
. scripts/kafka-broker.sh
echo "== tests"
cargo test --workspace
echo "== benchmarks (each run once, as tests)"
cargo test -p riffle-benches --benches
echo "== conformance summary (informational; regressions already failed the tests above)"
"$CARGO_TARGET_DIR/debug/riffle" test ../shared/conformance/ksql/tests \
    --names ../shared/conformance/ksql/in_scope.txt | tail -n 1 || true
