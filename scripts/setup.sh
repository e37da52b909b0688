#!/usr/bin/env bash
# One-time, idempotent set-up for building and testing riffle on a fresh machine.
# Fast when already done: it only checks what is there.
#
# System packages: cmake and libcurl headers build the bundled librdkafka (rdkafka's cmake-build),
# librocksdb-dev is the RocksDB riffle links (see .cargo/config.toml), libclang-dev runs bindgen.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is not installed; install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
fi

# DataFusion 55 needs rustc 1.94 or newer.
version=$(rustc --version | awk '{print $2}')
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
if [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt 94 ]; }; then
    echo "setup: rustc $version is too old; riffle needs 1.94 or newer (rustup update)" >&2
    exit 1
fi

for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        echo "setup: installing the $component component"
        rustup component add "$component"
    fi
done

packages="cmake libcurl4-openssl-dev librocksdb-dev libclang-dev"
missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "setup: installing system packages:$missing"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

if [ ! -d "$(dirname "$0")/../../shared/conformance/ksql/tests" ]; then
    echo "setup: warning: ../shared/conformance is missing; the conformance tests need it" >&2
fi
