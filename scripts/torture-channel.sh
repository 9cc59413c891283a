#!/usr/bin/env bash
# SIGKILL torture for the shared-memory channel: `ipcraft chan send` streams
# a file into `ipcraft chan recv`, and one side is killed with SIGKILL at a
# random moment (before it attaches, idle, mid-message, with the ring full,
# while closing). For every run it checks that the survivor
#   - ends within a second of the kill (its --timeout bounds the wait for a
#     peer that never attached),
#   - is not killed by a signal,
#   - exits 0 only for a complete stream (a receiver that printed all of
#     the input; a sender whose receiver took all of it), non-zero otherwise,
# and that what the receiver printed is an exact prefix of the input.
#
# usage: scripts/torture-channel.sh [RUNS_PER_SIDE] [PATH/TO/ipcraft] [PATH/TO/tokio_recv]
#        (defaults: 1000, target/release/ipcraft; CI runs a short version)
# With the third argument (the `tokio_recv` example, built with
# `--features tokio`), the receiver is the async one, in a tokio runtime.
# Exit status 0 when every run passed; the last line sums the runs up.
# TORTURE_SIDES="receiver" kills only that side (default: "sender receiver").
# A failing run's input, output and both sides' stderr are kept in a
# directory whose path the run's message names.
set -u
cd "$(dirname "$0")/.."
runs=${1:-1000}
bin=${2:-target/release/ipcraft}
async_recv=${3:-}
[ -x "$bin" ] || { echo "torture: no $bin (cargo build --release first)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ipcraft-torture.XXXXXX")
kept=0
trap '(( kept )) || rm -rf "$work"' EXIT
head -c $((3 << 20)) /dev/urandom > "$work/input"

now_ms() { date +%s%3N; }
hangs=0 nonprefix=0 signals=0 false_ok=0 total=0 slowest=0

for victim in ${TORTURE_SIDES:-sender receiver}; do
    for i in $(seq 1 "$runs"); do
        total=$((total + 1))
        name="/ipcraft-torture-$$-$victim-$i"
        caps=(4K 64K 1M)
        cap=${caps[RANDOM % 3]}
        size=$(( (RANDOM * 32768 + RANDOM) % (3 << 20) ))
        head -c "$size" "$work/input" > "$work/in"
        "$bin" chan create "$name" --capacity "$cap" || { echo "torture: create failed" >&2; exit 1; }
        # Start the two sides in a random order, so the victim may die
        # before it attaches.
        if [ -n "$async_recv" ]; then
            start_recv() { "$async_recv" chan "$name" --timeout 0.8 > "$work/out" 2> "$work/recv.err" & rpid=$!; }
        else
            start_recv() { "$bin" chan recv "$name" --timeout 0.8 > "$work/out" 2> "$work/recv.err" & rpid=$!; }
        fi
        start_send() { "$bin" chan send "$name" --timeout 0.8 < "$work/in" 2> "$work/send.err" & spid=$!; }
        # Emptied here, not only by the receiver's redirection: a receiver
        # killed before its shell opened `out` would leave the previous
        # run's output there, which may be longer than this run's input.
        : > "$work/out"; : > "$work/recv.err"; : > "$work/send.err"
        if (( RANDOM % 2 )); then start_recv; start_send; else start_send; start_recv; fi
        # A random moment: up to 40 ms in, biased towards the start; at
        # once in a quarter of the runs (no `sleep`, whose own start takes
        # long enough for a fast host to attach both sides first), so the
        # victim often dies before it attaches.
        delay=$(( RANDOM % 4 == 0 ? 0 : RANDOM % 40 ))
        (( delay > 0 )) && sleep "0.0$(printf '%02d' "$delay")"
        if [ "$victim" = sender ]; then victim_pid=$spid survivor=$rpid; else victim_pid=$rpid survivor=$spid; fi
        kill -9 "$victim_pid" 2>/dev/null
        killed_at=$(now_ms)
        wait "$victim_pid" 2>/dev/null
        # The survivor has a second (and a little for process exit).
        while kill -0 "$survivor" 2>/dev/null && (( $(now_ms) - killed_at < 1500 )); do sleep 0.005; done
        took=$(( $(now_ms) - killed_at ))
        if kill -0 "$survivor" 2>/dev/null; then
            hangs=$((hangs + 1))
            echo "run $victim/$i: the survivor still runs ${took} ms after the kill" >&2
            kill -9 "$survivor"
        fi
        wait "$survivor"; status=$?
        (( took > slowest )) && slowest=$took
        if (( status > 128 )); then
            signals=$((signals + 1))
            echo "run $victim/$i: the survivor died by signal $((status - 128))" >&2
        fi
        got=$(stat -c %s "$work/out")
        if ! cmp -s -n "$got" "$work/out" "$work/in" || (( got > size )); then
            nonprefix=$((nonprefix + 1))
            echo "run $victim/$i: the receiver printed something that is not a prefix of the input" >&2
        fi
        complete=0
        (( got == size )) && cmp -s "$work/out" "$work/in" && complete=1
        if (( status == 0 && complete == 0 )); then
            false_ok=$((false_ok + 1))
            echo "run $victim/$i: the surviving $([ "$victim" = sender ] && echo receiver || echo sender) exited 0 for a cut stream ($got of $size bytes)" >&2
            cat "$work/recv.err" "$work/send.err" >&2
        fi
        if (( hangs + nonprefix + signals + false_ok > kept )); then
            kept=$((hangs + nonprefix + signals + false_ok))
            mkdir "$work/$victim-$i"
            cp "$work/in" "$work/out" "$work/recv.err" "$work/send.err" "$work/$victim-$i/"
            echo "capacity=$cap size=$size got=$got kill_after_ms=$delay status=$status" > "$work/$victim-$i/run"
            echo "run $victim/$i: kept in $work/$victim-$i" >&2
        fi
        "$bin" chan rm "$name" 2>/dev/null
    done
done
echo "torture${async_recv:+ (async receiver)}: $total runs ($runs per side): $hangs hangs, $nonprefix non-prefix outputs, $signals deaths by signal, $false_ok false successes; slowest survivor ${slowest} ms after the kill"
(( hangs + nonprefix + signals + false_ok == 0 ))
