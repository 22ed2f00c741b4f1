#!/usr/bin/env bash
# Load benchmark of the control plane on SQLite (not a test): GET /v1/agents/{id} and
# POST /v1/agents with wrk over loopback against a release `parley serve`.
# Usage: control/bench/load.sh [duration_seconds] [connections]   (needs `wrk`, `curl`)
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR="${1:-15}"
CONN="${2:-32}"
# `parley` (release) serves when it builds; otherwise the control-plane-only example does.
BIN=target/release/parley
if [ -x "$BIN" ]; then
  SERVE=("$BIN" serve --listen)
  KEYS=("$BIN" keys create)
else
  cargo build --release -p parley-control --example serve_control
  SERVE=(target/release/examples/serve_control)
  KEYS=("${PARLEY_KEYS_BIN:-target/debug/parley}" keys create)
fi
DIR="$(mktemp -d)"
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$DIR"' EXIT
DB="sqlite://$DIR/bench.db"
KEY="$("${KEYS[@]}" --tenant bench --database-url "$DB")"
PORT=18093
if [ "${SERVE[0]}" = "$BIN" ]; then
  PARLEY_LOG=warn PARLEY_RATE_LIMIT_PER_MINUTE=1000000000 "${SERVE[@]}" "127.0.0.1:$PORT" --database-url "$DB" &
else
  PARLEY_RATE_LIMIT_PER_MINUTE=1000000000 "${SERVE[@]}" "127.0.0.1:$PORT" "$DB" &
fi
PID=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break; sleep 0.1; done
BODY='{"name":"Bench","persona":{"name":"B"},"voice":{"provider":"embedded","voiceId":"default"},"llm":{"provider":"embedded","model":"default"},"transcription":{"provider":"embedded"},"systemPromptTemplate":"You are {{who}}."}'
ID="$(curl -fsS -X POST -H "Authorization: Bearer $KEY" -H 'content-type: application/json' -d "$BODY" "http://127.0.0.1:$PORT/v1/agents" | sed -E 's/.*"id":"([^"]+)".*/\1/')"
echo "== GET /v1/agents/$ID ($CONN connections, ${DUR}s)"
wrk -t2 -c"$CONN" -d"${DUR}s" --latency -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/v1/agents/$ID"
cat > "$DIR/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
LUA
echo "== POST /v1/agents ($CONN connections, ${DUR}s)"
wrk -t2 -c"$CONN" -d"${DUR}s" --latency -s "$DIR/post.lua" "http://127.0.0.1:$PORT/v1/agents"
