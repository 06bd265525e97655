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
BROKER_PID= A_PID= B_PID= SIM_PID= SEQ_PID=
MACHINES=60 RATE=100 DURATION=30
cleanup() {
    for p in $SIM_PID $A_PID $B_PID $SEQ_PID; do kill -KILL "$p" 2>/dev/null || true; done
    for p in $SIM_PID $A_PID $B_PID $SEQ_PID; do wait "$p" 2>/dev/null || true; done
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
t0=$SECONDS

"$VIGIL" broker --partitions 12 --group vigil-two --address-file "$W/broker.addr" > /dev/null 2> "$W/broker.log" &
BROKER_PID=$!
wait_for 20 test -s "$W/broker.addr" || fail "broker did not start"
B=$(cat "$W/broker.addr")

# The embedded broker frees a dead member's partitions when its session times out, and
# holds each rebalance open for the session less a second: keep it short, with heartbeats
# well inside that second (tests/vgtest.h, VGT_SESSION_MS, says why).
# Each instance serves its metrics on a port of the kernel's choosing (read from its log),
# for a reader token of its own.
run() { # run NAME: one instance, progress lines every 5 s on stderr
    mkdir -p "$W/$1-data"
    "$VIGIL" token add --data "$W/$1-data" --tenant tenant-1 --role reader --name t \
        > "$W/$1.token" 2> /dev/null || fail "token for $1"
    "$VIGIL" run --brokers "$B" --group vigil-two --data "$W/$1-data" --api 127.0.0.1:0 \
        --lateness 2 -X session.timeout.ms=4000 -X heartbeat.interval.ms=500 \
        > "$W/$1.out" 2> "$W/$1.log" &
}
# metrics NAME: the instance's metrics, on stdout.
metrics() {
    local port
    port=$(sed -n 's/.*api: listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$W/$1.log" | head -1)
    [ -n "$port" ] || return 1
    curl -sf -H "Authorization: Bearer $(cat "$W/$1.token")" "http://127.0.0.1:$port/metrics"
}
# commits NAME: how many offset commits the instance has made.
commits() { metrics "$1" | awk '$1 == "vigil_offset_commits_total" {print $2}'; }
# commits_past NAME N: true once the instance has made more than N offset commits.
commits_past() { local n; n=$(commits "$1") && [ -n "$n" ] && [ "${n%.*}" -gt "$2" ]; }
# caught_up NAME: true when the instance is behind no partition's high watermark.
caught_up() {
    local lags
    lags=$(metrics "$1" | awk '$1 ~ /^vigil_consumer_lag\{/ {print $2}') || return 1
    [ -n "$lags" ] && [ -z "$(echo "$lags" | grep -v '^0$')" ]
}
# The stored events are read with `vigil timeline`, a process per machine and database that
# spends most of its time opening the database: A's while the stream still runs (below), the
# rest at the end, four at a time.
seqs() { # seqs DB MACHINE: DB's events of MACHINE, as sorted sequence numbers in seq/DB.MACHINE
    local t
    t=$(echo "$2" | sed -E 's/^[A-Za-z]+-(tenant-[0-9]+)-.*/\1/')
    "$VIGIL" timeline --data "$W/$1-data" --tenant "$t" --machine "$2" --format json \
        --limit 100000000 2> /dev/null | sed -E 's/.*"seq":([0-9]+).*/\1/' | sort -n > "$W/seq/$1.$2"
}
export -f seqs; export VIGIL W
mkdir "$W/seq"
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
# Kill A once it has committed its new partitions: a checkpoint commits once what was
# produced up to it is acknowledged (a commit interval or two under a steady stream);
# otherwise B re-reads them from the start and no machine changes hands. Two commits more
# than it had made when its new assignment was logged: the second began after that.
wait_for 10 commits_past a -1 || fail "A serves no commit count"
c0=$(commits a)
wait_for 60 commits_past a $((${c0%.*} + 1)) || fail "A made no commit on its new partitions"
kill -0 "$A_PID" 2>/dev/null || fail "A exited by itself"
kill -KILL "$A_PID"; wait "$A_PID" 2>/dev/null || true; A_PID=
echo "A killed at $((SECONDS - t0)) s"
# A's database is final now: read its timelines while the stream goes on, for the machines
# on the topic so far (every one of them, at this rate; any other is read at the end).
kcat -C -b "$B" -t telemetry -e -q -f '%k\n' | sort -u | sed 's/^/a /' |
    xargs -P 2 -L 1 bash -c 'set -o pipefail; seqs "$0" "$1"' > /dev/null 2>&1 &
SEQ_PID=$!
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
# B has caught up when it is behind no partition's high watermark (every message consumed;
# a clean stop makes all it consumed durable) in every reading over two seconds after the
# producer finished: it reads the watermarks once a second, from its fetch responses, so the
# last of those readings saw the final ends. Then it stops cleanly.
deadline=$((SECONDS + 90)) since=
while :; do
    [ $SECONDS -lt $deadline ] || fail "B did not catch up: $(metrics b | grep consumer_lag | tr '\n' ' ')"
    kill -0 "$B_PID" 2>/dev/null || fail "B exited by itself"
    if caught_up b; then
        now=$(date +%s%N)
        since=${since:-$now}
        [ $((now - since)) -lt 2000000000 ] || break
    else
        since=
    fi
    sleep 0.2
done
kill -TERM "$B_PID"; wait "$B_PID" || fail "B exited non-zero on SIGTERM"; B_PID=
grep -Eq "^lost upstream +0$" "$W/b.out" || fail "B reports events lost upstream: $(grep lost "$W/b.out")"

# Every machine (the topic's keys) in both databases; A's is read as it was at the kill.
kcat -C -b "$B" -t telemetry -e -q -f '%k\n' | sort -u > "$W/machines"
nm=$(wc -l < "$W/machines")
[ "$nm" = "$MACHINES" ] || fail "$nm machines on the topic, $MACHINES simulated"
wait "$SEQ_PID" || fail "reading A's timelines"; SEQ_PID=
while read -r m; do
    [ -e "$W/seq/a.$m" ] || echo "a $m"
    echo "b $m"
done < "$W/machines" |
    xargs -P 4 -L 1 bash -c 'set -o pipefail; seqs "$0" "$1" || { echo "timeline of $1 in $0"; exit 255; }' ||
    fail "timelines"
# The checks, per machine, in one awk (a process or two per check and machine cost more
# than the timelines). Each file is sorted; it prints the totals, or the first failure.
sums=$(awk -v dir="$W/seq" -v machines="$W/machines" '
function load(path, s,    n, x) { # s[1..n]: the sorted numbers of path; returns n
    n = 0
    while ((getline x < path) > 0)
        s[++n] = x + 0
    close(path)
    return n
}
function fail(msg) { print msg; failed = 1; exit 1 }
BEGIN {
    ta = tb = un = ov = taken = 0
    while ((getline m < machines) > 0) {
        split("", a); split("", b); split("", both)
        if ((getline x < (dir "/a." m)) < 0 || (getline x < (dir "/b." m)) < 0)
            fail("no timeline of " m)
        close(dir "/a." m); close(dir "/b." m)
        na = load(dir "/a." m, a); nb = load(dir "/b." m, b)
        for (i = 2; i <= na; i++) if (a[i] == a[i - 1]) fail(m ": A stores an event twice")
        for (i = 2; i <= nb; i++) if (b[i] == b[i - 1]) fail(m ": B stores an event twice")
        nu = 0
        for (i = 1; i <= na; i++) if (!(a[i] in both)) { both[a[i]] = 1; nu++ }
        for (i = 1; i <= nb; i++) if (!(b[i] in both)) { both[b[i]] = 1; nu++ }
        if (nu == 0) fail(m ": no events stored")
        lo = na > 0 && (nb == 0 || a[1] < b[1]) ? a[1] : b[1]
        hi = na > 0 && (nb == 0 || a[na] > b[nb]) ? a[na] : b[nb]
        if (hi - lo + 1 != nu) fail(m ": the union has gaps (" nu " events in " lo ".." hi ")")
        if (nb == 0) fail(m ": the survivor holds none of its events")
        blo = b[1]; bhi = b[nb]
        if (bhi != hi) fail(m ": B stops at " bhi ", the machine'"'"'s last event is " hi)
        if (bhi - blo + 1 != nb) fail(m ": B'"'"'s part has gaps (" nb " events in " blo ".." bhi ")")
        if (na > 0) {
            alo = a[1]; ahi = a[na]
            if (alo != lo) fail(m ": A'"'"'s part starts at " alo ", not at the first event " lo)
            if (ahi - alo + 1 != na) fail(m ": A'"'"'s part has gaps (" na " events in " alo ".." ahi ")")
            if (blo > ahi + 1) fail(m ": events " ahi + 1 ".." blo - 1 " in neither")
            if (blo > lo) taken++
        }
        ta += na; tb += nb; un += nu; ov += na + nb - nu
    }
    close(machines)
    print ta, tb, un, ov, taken
}') || fail "$sums"
read -r total_a total_b union overlap taken <<< "$sums"
[ "$union" = "$produced" ] || fail "union holds $union events, $produced produced"
[ "$taken" -gt 0 ] || fail "no machine changed hands"
echo "produced $produced; A stored $total_a, B stored $total_b; $taken machines taken over" \
    "by B mid-stream; $overlap events stored by both (re-processed after the takeover)"
echo "two instances: union complete, survivor exact from its takeover; $((SECONDS - t0)) s"
echo "1 passed, 0 failed"
