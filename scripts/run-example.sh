#!/usr/bin/env bash
# Builds riffle and runs the main example: high-intent account detection over generated page
# views (no Kafka needed). Extra arguments go to `riffle run`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
scripts/setup.sh
cargo build --bin riffle
exec "$CARGO_TARGET_DIR/debug/riffle" run examples/revops/high_intent.sql --until-idle "$@"
