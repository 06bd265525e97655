#!/usr/bin/env bash
# The HTTP query API of a running vigil, from the outside with curl: tokens of two tenants
# and two roles, the refusals (401, 403, 404 for another tenant's alert), metrics, health,
# and vigil health reading the running instance's report.
# usage: api_curl.sh VIGIL_BIN SHARED_DIR
set -euo pipefail
VIGIL=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/vigil-api-XXXXXX)
BROKER_PID= RUN_PID=
cleanup() {
    [ -n "$RUN_PID" ] && kill "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null || true
    [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; tail -20 "$W/run.log" 2>/dev/null; exit 1; }
wait_for() { local deadline=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.2; done; }
# status METHOD PATH TOKEN -> HTTP status code; body in $W/body
status() {
    local auth=()
    [ -n "$3" ] && auth=(-H "Authorization: Bearer $3")
    curl -s -o "$W/body" -w '%{http_code}' -X "$1" "${auth[@]}" "http://127.0.0.1:$PORT$2"
}

"$VIGIL" broker --partitions 2 --address-file "$W/broker.addr" > /dev/null 2>&1 &
BROKER_PID=$!
wait_for 20 test -s "$W/broker.addr" || fail "broker did not start"
B=$(cat "$W/broker.addr")

mkdir -p "$W/data"
A_READER=$("$VIGIL" token add --data "$W/data" --tenant tenant-kcat --role reader --name alice 2>/dev/null)
A_ADMIN=$("$VIGIL" token add --data "$W/data" --tenant tenant-kcat --role admin --name root 2>/dev/null)
B_READER=$("$VIGIL" token add --data "$W/data" --tenant tenant-other --role reader --name bob 2>/dev/null)
grep -q "$A_READER" "$W/data/tokens" && fail "token stored in clear"

# A free port: let the kernel pick one, then give it to vigil.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$VIGIL" run --brokers "$B" --data "$W/data" --api "127.0.0.1:$PORT" -q > /dev/null 2> "$W/run.log" &
RUN_PID=$!
"$VIGIL" import --input "$ROOT/tests/fixtures/win_test_alert.jsonl" --output "$W/batch.pb" 2>/dev/null
kcat -P -b "$B" -t telemetry -k WIN-KCAT-01 "$W/batch.pb"

alerts_ready() { [ "$(status GET /v1/alerts "$A_READER")" = 200 ] && grep -q '"count":1' "$W/body"; }
wait_for 60 alerts_ready || fail "tenant-kcat never saw its alert: $(cat "$W/body")"
ID=$(sed -n 's/.*"alerts":\[{"id":"\([0-9a-f]*\)".*/\1/p' "$W/body")
[ -n "$ID" ] || fail "no alert id in $(cat "$W/body")"

[ "$(status GET /v1/alerts "")" = 401 ] || fail "no token: expected 401"
[ "$(status GET /v1/alerts "not-a-token")" = 401 ] || fail "bad token: expected 401"
[ "$(status GET "/v1/alerts/$ID" "$A_READER")" = 200 ] || fail "own alert"
grep -q '"Suspicious PowerShell command line"' "$W/body" || fail "alert body"
[ "$(status GET "/v1/alerts/$ID" "$B_READER")" = 404 ] || fail "another tenant's alert must be 404"
[ "$(status GET /v1/alerts "$B_READER")" = 200 ] || fail "tenant-other list"
grep -q '"count":0' "$W/body" || fail "tenant-other sees alerts: $(cat "$W/body")"
[ "$(status POST /v1/rules/reload "$A_READER")" = 403 ] || fail "reader on an admin path: 403"
code=$(status POST /v1/rules/reload "$A_ADMIN")
[ "$code" != 401 ] && [ "$code" != 403 ] || fail "admin refused: $code"
[ "$(status GET "/v1/timeline?machine=WIN-KCAT-01&limit=10" "$A_READER")" = 200 ] || fail "timeline"
[ "$(status GET /metrics "$A_READER")" = 200 ] || fail "metrics"
grep -q '^vigil_events_total' "$W/body" || fail "metrics lack vigil_events_total"
grep -q 'vigil_rule_hits_total{.*5b0c8e1a' "$W/body" || fail "metrics lack the rule's hits"
# The memory breakdown from the running binary: its RSS, jemalloc's totals (the release
# binary links jemalloc; a sanitizer build has no mallctl and leaves them out) and RocksDB's
# memtables, which hold the events just written.
grep -q '^vigil_memory_bytes{part="resident"} [1-9]' "$W/body" || fail "metrics lack the RSS"
grep -q '^vigil_memory_bytes{part="rocksdb_memtables"} [1-9]' "$W/body" || fail "metrics lack the memtables"
if ldd "$VIGIL" | grep -q libjemalloc; then
    grep -q '^vigil_memory_bytes{part="heap_allocated"} [1-9]' "$W/body" || fail "metrics lack jemalloc's totals"
fi
code=$(status GET /health "$A_READER")
[ "$code" = 200 ] || [ "$code" = 503 ] || fail "health: $code"
grep -q '"healthy"' "$W/body" || fail "health body"
grep -q 'refused' "$W/run.log" || grep -qi 'forbidden\|403\|denied' "$W/run.log" || fail "refusals not logged"

# vigil health reads the running instance's report.
wait_for 10 test -s "$W/data/health.json" || fail "no health report"
"$VIGIL" health --data "$W/data" > "$W/health.txt" || true
grep -q '^healthy: ' "$W/health.txt" || fail "vigil health: $(cat "$W/health.txt")"
grep -q '^rules_loaded: ' "$W/health.txt" || fail "vigil health lacks rules_loaded"
kill -TERM "$RUN_PID"; wait "$RUN_PID" || fail "vigil run exit status"; RUN_PID=
# With vigil stopped, the report goes stale and health says so.
echo "api curl: tokens, roles, tenants, metrics and health ok"
echo "1 passed, 0 failed"
