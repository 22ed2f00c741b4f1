#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, and every test of every crate
# (unit, integration, end-to-end against the real binary, and the benchmarks once each
# in test mode). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/deps.sh

# The control-plane tests run against the local PostgreSQL too; under CI they must.
if [ "${CI:-}" = "true" ]; then
  export PARLEY_REQUIRE_POSTGRES=1
  if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
cargo test --workspace --all-targets --locked
