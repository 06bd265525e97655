#!/usr/bin/env bash
# Noise: every SigmaHQ rule over every real recording in shared/data/telemetry, through
# vigil replay, with the table of alerts per 10,000 events by rule printed so noisy rules
# are visible. Checks that every event was evaluated and the table is complete.
# usage: sigma_noise.sh VIGIL_BIN SHARED_DIR
set -euo pipefail
VIGIL=$1
SHARED=$(cd "$2" && pwd)
W=$(mktemp -d /tmp/vigil-noise-XXXXXX)
trap 'rm -rf "$W"' EXIT
expected=$(find "$SHARED/data/telemetry" -name '*.jsonl' -exec cat {} + | grep -c .)
find "$SHARED/data/telemetry" -name '*.jsonl' | sort | xargs cat |
    "$VIGIL" replay --input - --rules "$SHARED/data/sigma/rules" \
        --rules "$SHARED/data/sigma/rules-threat-hunting" --rule-stats \
        --alerts-jsonl "$W/alerts.jsonl" 2> "$W/stats.txt"
sed -n '/^rules that fired/,$p' "$W/stats.txt" | head -40 || true
grep -q "vigil replay: $expected events" "$W/stats.txt" ||
    { echo "FAIL: expected $expected events evaluated"; grep 'vigil replay' "$W/stats.txt"; exit 1; }
fired=$(sed -n 's/^rules that fired: \([0-9]*\) of.*/\1/p' "$W/stats.txt")
rows=$(sed -n '/^alerts\/10k/,$p' "$W/stats.txt" | tail -n +2 | grep -c .)
[ "$fired" = "$rows" ] || { echo "FAIL: table has $rows rows for $fired rules"; exit 1; }
alerts=$(grep -c . "$W/alerts.jsonl" || true)
sum=$(sed -n '/^alerts\/10k/,$p' "$W/stats.txt" | tail -n +2 | awk '{s += $3} END {print s + 0}')
[ "$alerts" = "$sum" ] || { echo "FAIL: $alerts alert lines, table sums to $sum"; exit 1; }
echo "sigma noise: $expected events, $fired rules fired, $alerts alerts"
echo "1 passed, 0 failed"
