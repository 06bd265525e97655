#!/usr/bin/env bash
# Two `vigil run` instances in one consumer group against the embedded broker (its own
# process), each with its own data directory. Telemetry flows in real time; instance A is
# SIGKILLed half way and B takes over A's partitions. Each instance has its own RocksDB,
# and B resumes A's partitions from the Kafka committed offsets (A's RocksDB is not
# visible to it), so the events between A's last Kafka commit and its death are processed
# again by B and are stored in both databases. The properties checked, per machine:
#   - union: A's and B's timelines together hold every produced event (the sequence
#     numbers form one gap-free range; the totals add up to what was produced);
#   - each database holds each event at most once;
#   - A holds a gap-free prefix of the machine's range (from the first event) or nothing;
#   - B, the survivor, holds a gap-free suffix that runs to the machine's last event: every
#     event from where it took over onwards, exactly once, and no gap between A's and B's
#     parts.
# The overlap (events stored by both) is reported: it is the re-processing a takeover costs.
# The broker is started with the group's changelog topic, so correlator state moves too.
# usage: two_instances.sh VIGIL_BIN SHARED_DIR
set -euo pipefail
VIGIL=$1
W=$(mktemp -d /tmp/vigil-two-XXXXXX)
BROKER_PID= A_PID= B_PID= SIM_PID=
MACHINES=60 RATE=100 DURATION=40
cleanup() {
    for p in $SIM_PID $A_PID $B_PID; do kill -KILL "$p" 2>/dev/null || true; done
    for p in $SIM_PID $A_PID $B_PID; do wait "$p" 2>/dev/null || true; done
    if [ -n "$BROKER_PID" ]; then kill "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true; fi
    [ -n "${VG_KEEP_TMP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in a.log b.log sim.log; do echo "--- $f"; tail -20 "$W/$f" 2>/dev/null || true; done
    exit 1
}
wait_for() { # wait_for SECONDS CMD...: polls until CMD succeeds
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.2; done
}
# The last progress line's "events N ... dup D" of a log, as "N D".
progress() { grep -o 'events [0-9]* ([0-9]*/s)  dup [0-9]*' "$1" | tail -1 | awk '{print $2, $5}'; }
t0=$SECONDS

"$VIGIL" broker --partitions 12 --group vigil-two --address-file "$W/broker.addr" > /dev/null 2> "$W/broker.log" &
BROKER_PID=$!
wait_for 20 test -s "$W/broker.addr" || fail "broker did not start"
B=$(cat "$W/broker.addr")

# The embedded broker frees a dead member's partitions when its session times out: keep
# it short, as vigil run does on its own embedded broker.
run() { # run NAME: one instance, progress lines every 5 s on stderr
    "$VIGIL" run --brokers "$B" --group vigil-two --data "$W/$1-data" --no-api \
        --lateness 2 -X session.timeout.ms=6000 > "$W/$1.out" 2> "$W/$1.log" &
}
run a; A_PID=$!
wait_for 30 grep -q "ingest: assigned" "$W/a.log" || fail "A was never assigned partitions"

# Telemetry paced to wall time, so that there is a stream to take over.
"$VIGIL" simulate --brokers "$B" --machines $MACHINES --rate $RATE --duration $DURATION \
    --seed 11 --realtime > /dev/null 2> "$W/sim.log" &
SIM_PID=$!
run b; B_PID=$!
# B joins: the group rebalances and A hands half its partitions over (sealed, committed).
# (Regression: A went on committing partitions it had handed over; those commits, failing
# during the rebalance, kept the group rejoining and neither instance got partitions.)
wait_for 40 grep -q "ingest: assigned" "$W/b.log" || fail "B was never assigned partitions"
wait_for 40 grep -q "ingest: assigned 6 partitions" "$W/a.log" || fail "A kept all partitions"
# Let both consume for a while (the kill point, not a synchronisation), then kill A. Long
# enough for A to commit its new partitions at least once, even in a slow build (ASan): a
# checkpoint commits once what was produced up to it is acknowledged (a commit interval or
# two under a steady stream); otherwise B re-reads them from the start and no machine
# changes hands.
sleep 12
kill -0 "$A_PID" 2>/dev/null || fail "A exited by itself"
kill -KILL "$A_PID"; wait "$A_PID" 2>/dev/null || true; A_PID=
echo "A killed at $((SECONDS - t0)) s"
# B takes A's partitions over once A's session has timed out.
wait_for 60 grep -q "ingest: assigned 12 partitions" "$W/b.log" || fail "B did not take over"
echo "B took over at $((SECONDS - t0)) s"
# The correlator state of the machines it took came with them (the broker made the group's
# changelog topic; tests/kafka/test_changelog.c checks what the state does).
grep -Eq "changelog vigil-two.changelog\[[0-9]+\]: [1-9][0-9]* machine states restored" "$W/b.log" ||
    fail "B restored no correlator state from the changelog"

wait "$SIM_PID" || fail "simulate failed"; SIM_PID=
produced=$(sed -n 's/.* \([0-9]*\) events produced.*/\1/p' "$W/sim.log")
[ -n "$produced" ] && [ "$produced" -gt 0 ] || fail "simulate produced nothing: $(cat "$W/sim.log")"
# B has caught up when its counts (new events and duplicates) stop moving across two
# progress lines (5 s apart) after the producer finished; then it stops cleanly.
prev= stable=0 deadline=$((SECONDS + 90))
while [ $stable -lt 2 ]; do
    [ $SECONDS -lt $deadline ] || fail "B did not settle"
    kill -0 "$B_PID" 2>/dev/null || fail "B exited by itself"
    cur=$(progress "$W/b.log")
    if [ -n "$cur" ] && [ "$cur" = "$prev" ]; then stable=$((stable + 1)); else stable=0; fi
    prev=$cur
    sleep 5.1
done
kill -TERM "$B_PID"; wait "$B_PID" || fail "B exited non-zero on SIGTERM"; B_PID=
grep -Eq "^lost upstream +0$" "$W/b.out" || fail "B reports events lost upstream: $(grep lost "$W/b.out")"

# Every machine (the topic's keys) in both databases; A's is read as it was at the kill.
kcat -C -b "$B" -t telemetry -e -q -f '%k\n' | sort -u > "$W/machines"
nm=$(wc -l < "$W/machines")
[ "$nm" = "$MACHINES" ] || fail "$nm machines on the topic, $MACHINES simulated"
total_a=0 total_b=0 union=0 overlap=0 taken=0
while read -r m; do
    t=$(echo "$m" | sed -E 's/^[A-Za-z]+-(tenant-[0-9]+)-.*/\1/')
    for i in a b; do
        "$VIGIL" timeline --data "$W/$i-data" --tenant "$t" --machine "$m" --format json \
            --limit 100000000 2> /dev/null | sed -E 's/.*"seq":([0-9]+).*/\1/' | sort -n > "$W/$i.seq" ||
            fail "timeline of $m in $i"
    done
    na=$(wc -l < "$W/a.seq") nb=$(wc -l < "$W/b.seq")
    [ -z "$(uniq -d "$W/a.seq")" ] || fail "$m: A stores an event twice"
    [ -z "$(uniq -d "$W/b.seq")" ] || fail "$m: B stores an event twice"
    sort -n -u "$W/a.seq" "$W/b.seq" > "$W/u.seq"
    nu=$(wc -l < "$W/u.seq")
    [ "$nu" -gt 0 ] || fail "$m: no events stored"
    lo=$(head -1 "$W/u.seq") hi=$(tail -1 "$W/u.seq")
    [ $((hi - lo + 1)) = "$nu" ] || fail "$m: the union has gaps ($nu events in $lo..$hi)"
    [ "$nb" -gt 0 ] || fail "$m: the survivor holds none of its events"
    blo=$(head -1 "$W/b.seq") bhi=$(tail -1 "$W/b.seq")
    [ "$bhi" = "$hi" ] || fail "$m: B stops at $bhi, the machine's last event is $hi"
    [ $((bhi - blo + 1)) = "$nb" ] || fail "$m: B's part has gaps ($nb events in $blo..$bhi)"
    if [ "$na" -gt 0 ]; then
        alo=$(head -1 "$W/a.seq") ahi=$(tail -1 "$W/a.seq")
        [ "$alo" = "$lo" ] || fail "$m: A's part starts at $alo, not at the first event $lo"
        [ $((ahi - alo + 1)) = "$na" ] || fail "$m: A's part has gaps ($na events in $alo..$ahi)"
        [ "$blo" -le $((ahi + 1)) ] || fail "$m: events $((ahi + 1))..$((blo - 1)) in neither"
        if [ "$blo" -gt "$lo" ]; then taken=$((taken + 1)); fi
    fi
    total_a=$((total_a + na)) total_b=$((total_b + nb)) union=$((union + nu))
    overlap=$((overlap + na + nb - nu))
done < "$W/machines"
[ "$union" = "$produced" ] || fail "union holds $union events, $produced produced"
[ "$taken" -gt 0 ] || fail "no machine changed hands"
echo "produced $produced; A stored $total_a, B stored $total_b; $taken machines taken over" \
    "by B mid-stream; $overlap events stored by both (re-processed after the takeover)"
echo "two instances: union complete, survivor exact from its takeover; $((SECONDS - t0)) s"
echo "1 passed, 0 failed"
