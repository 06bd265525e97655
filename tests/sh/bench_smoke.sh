#!/usr/bin/env bash
# vigil bench's short form, as `make test` runs it: checks that the report is complete
# (summary, JSON with every top-level figure, plot), never the speed.
# usage: bench_smoke.sh VIGIL_BIN SHARED_DIR
set -euo pipefail
VIGIL=$1
W=$(mktemp -d /tmp/vigil-bench-XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; tail -30 "$W/bench.err" 2>/dev/null || true; exit 1; }

"$VIGIL" bench --help > "$W/help.txt" || fail "bench --help"
for m in in-process kafka latency memory scaling --brokers --smoke; do
    grep -q -- "$m" "$W/help.txt" || fail "--help does not document $m"
done

"$VIGIL" bench --smoke --out "$W/out" > "$W/bench.out" 2> "$W/bench.err" || fail "bench --smoke exited $?"
grep -q "vigil bench: .*events in .* batches" "$W/bench.err" || fail "no progress lines"
S="$W/out/summary.txt" J="$W/out/bench.json"
[ -s "$S" ] || fail "no summary"
[ -s "$J" ] || fail "no JSON"
for g in "end to end" "consume alone" "consume + decode" "store alone" "latency" \
         "bytes on disk per event" "resident per tracked machine" "detection" "lost_upstream" \
         "goals"; do
    grep -q "$g" "$S" || fail "summary lacks '$g'"
done
# Every top-level figure is there, as a number; the measured ones are positive.
num() { sed -n "s/^  \"$1\": \([0-9.e+-]*\),*$/\1/p" "$J"; }
for k in events_per_second ceiling_events_per_second latency_p99_ms bytes_per_event \
         rss_bytes_per_machine rules_loaded; do
    v=$(num "$k")
    [ -n "$v" ] || fail "bench.json lacks $k"
    awk -v v="$v" 'BEGIN { exit !(v > 0) }' || fail "$k is not positive: $v"
done
grep -q '"lost_upstream": 0' "$J" || fail "events were lost at the broker"
grep -q '"found": [1-9]' "$J" || fail "no injected attack found"
grep -q '"p99_ms"' "$J" || fail "no latency runs"
if command -v gnuplot > /dev/null; then
    [ -s "$W/out/bench.png" ] || fail "no plot"
fi
echo "bench smoke: 1 passed, 0 failed"
