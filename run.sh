#!/usr/bin/env bash
# Sets up a fresh Debian machine and starts `parley serve` on the embedded defaults
# (SQLite file ./parley.db, listening on 0.0.0.0:8080). Extra arguments go to `parley serve`,
# e.g. ./run.sh --listen 127.0.0.1:9000
set -euo pipefail
cd "$(dirname "$0")"
./scripts/deps.sh
cargo build --release --bin parley
exec ./target/release/parley serve "$@"
