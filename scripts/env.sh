# Shared build settings, sourced by the other scripts.
# The target directory lives outside the clone so repeated runs and fresh clones reuse the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/riffle-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
