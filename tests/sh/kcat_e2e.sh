#!/usr/bin/env bash
# End to end from the outside, as an operator would: the embedded broker in its own
# process, vigil run against it, kcat -P sends one encoded TelemetryBatch holding the
# Windows reference test command, kcat -C reads the alert back from "alerts", vigil alert
# decode decodes it, and vigil timeline shows the batch's events in RocksDB.
# usage: kcat_e2e.sh VIGIL_BIN SHARED_DIR
set -euo pipefail
VIGIL=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/vigil-kcat-XXXXXX)
BROKER_PID= RUN_PID=
cleanup() {
    [ -n "$RUN_PID" ] && kill "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null || true
    [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- vigil log"; cat "$W/run.log" 2>/dev/null | tail -40; exit 1; }
wait_for() { # wait_for SECONDS CMD...: polls until CMD succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.2; done
}

"$VIGIL" broker --partitions 3 --address-file "$W/broker.addr" > /dev/null 2> "$W/broker.log" &
BROKER_PID=$!
wait_for 20 test -s "$W/broker.addr" || fail "broker did not start"
B=$(cat "$W/broker.addr")

"$VIGIL" import --input "$ROOT/tests/fixtures/win_test_alert.jsonl" --output "$W/batch.pb" \
    2> "$W/import.log" || fail "import: $(cat "$W/import.log")"

"$VIGIL" run --brokers "$B" --data "$W/data" --alerts-jsonl "$W/alerts.jsonl" -q \
    > "$W/run.out" 2> "$W/run.log" &
RUN_PID=$!

# One message: the file is sent whole (kcat -P with a file argument), keyed by machine.
kcat -P -b "$B" -t telemetry -k WIN-KCAT-01 "$W/batch.pb" || fail "kcat -P"

# The alert comes back on the alerts topic.
got=0
for _ in $(seq 1 300); do
    kcat -C -b "$B" -t alerts -c 1 -e -q -f '%s' -o beginning > "$W/alert.pb" 2>/dev/null || true
    if [ -s "$W/alert.pb" ]; then got=1; break; fi
    sleep 0.2
done
[ $got = 1 ] || fail "no alert on the alerts topic"
"$VIGIL" alert decode "$W/alert.pb" > "$W/alert.json" || fail "alert does not decode"
grep -q '"title":"Suspicious PowerShell command line"' "$W/alert.json" || fail "title: $(cat "$W/alert.json")"
grep -q '"severity":"Informational"' "$W/alert.json" || fail "severity"
grep -q '"category":"Execution"' "$W/alert.json" || fail "category"
grep -q '"machine":"WIN-KCAT-01"' "$W/alert.json" || fail "machine"
grep -q 'cmd.exe' "$W/alert.json" || fail "process tree lacks the parent cmd.exe"
n=$(kcat -C -b "$B" -t alerts -e -q -f '%k\n' -o beginning | grep -c . || true)
[ "$n" = 1 ] || fail "expected exactly 1 alert message, got $n"

# A batch that claims another tenant for a known machine goes to the dead-letter topic
# with its reason, and the machine's timeline does not take it.
sed 's/"tenant":"tenant-kcat"/"tenant":"tenant-evil"/' \
    "$ROOT/tests/fixtures/win_test_alert.jsonl" > "$W/evil.jsonl"
"$VIGIL" import --input "$W/evil.jsonl" --output "$W/evil.pb" 2> /dev/null || fail "import evil"
kcat -P -b "$B" -t telemetry -k WIN-KCAT-01 "$W/evil.pb" || fail "kcat -P evil"
got=0
for _ in $(seq 1 300); do
    kcat -C -b "$B" -t telemetry.dlq -c 1 -e -q -f '%h\n' -o beginning > "$W/dlq.txt" 2>/dev/null || true
    if [ -s "$W/dlq.txt" ]; then got=1; break; fi
    sleep 0.2
done
[ $got = 1 ] || fail "no dead letter for the foreign tenant"
grep -q 'reason=machine WIN-KCAT-01 belongs to another tenant' "$W/dlq.txt" || fail "dlq reason: $(cat "$W/dlq.txt")"

# Graceful stop: everything consumed is sealed, written and committed.
kill -TERM "$RUN_PID"; wait "$RUN_PID" || fail "vigil run exited non-zero"; RUN_PID=

"$VIGIL" timeline --data "$W/data" --tenant tenant-kcat --machine WIN-KCAT-01 --format json \
    > "$W/timeline.json" || fail "timeline"
lines=$(wc -l < "$W/timeline.json")
[ "$lines" = 3 ] || fail "timeline holds $lines events, expected 3: $(cat "$W/timeline.json")"
grep -q 'powershell.exe -NoExit' "$W/timeline.json" || fail "timeline lacks the command"
# The JSON-lines output carries the same alert.
grep -q '"Suspicious PowerShell command line"' "$W/alerts.jsonl" || fail "alerts.jsonl"
echo "kcat e2e: alert round trip and timeline ok"
echo "1 passed, 0 failed"
