#!/usr/bin/env bash
# SIGKILL torture for the shared-memory patterns beyond one-to-one (the
# channel has scripts/torture-channel.sh):
#   topic   a publisher streams numbered lines to two subscribers (block
#           policy, 4K ring); the publisher or one subscriber is killed.
#           A killed subscriber must not stop the publisher or the other
#           subscriber (both finish, exit 0, the other's output is exact);
#           a killed publisher makes both subscribers end within a second,
#           non-zero unless they got everything, with an exact prefix.
#   many    two `chan send --timeout 0.8` (a receiver killed before it
#           attached is waited for that long) into one `chan recv`
#           (--senders 2); one sender
#           or the receiver is killed. A killed sender: the other's lines
#           all arrive, the victim's are a prefix of its input, the
#           receiver exits 1 within a second of the end. A killed
#           receiver: both senders end within a second, non-zero.
#   service a server (echo) and three clients calling in a loop; the server
#           or a client is killed. A killed client harms no other (each
#           response is the client's own request); a killed server makes
#           every waiting client fail within a second.
# Every survivor must end within a second of the kill (or of the end of
# its input), never by a signal. A peer killed before it attached is
# indistinguishable from one that has not come yet: waits for a peer are
# bounded with --timeout 0.8, as in torture-channel.sh.
#
# usage: scripts/torture-patterns.sh [RUNS_PER_CASE] [PATH/TO/ipcraft]
#        (defaults: 1000, target/release/ipcraft; CI runs a short version;
#        CASES="topic many" runs only those)
set -u
cd "$(dirname "$0")/.."
runs=${1:-1000}
bin=${2:-target/release/ipcraft}
[ -x "$bin" ] || { echo "torture: no $bin (cargo build --release first)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ipcraft-torture-patterns.XXXXXX")
names=()
trap 'for n in "${names[@]}"; do rm -f "/dev/shm$n"; done; rm -rf "$work"' EXIT
seq 1 200000 | sed 's/$/ some payload to make the lines longer/' > "$work/input"

now_ms() { date +%s%3N; }
failures=0 total=0 slowest=0
fail() { failures=$((failures + 1)); echo "torture: $case run $i ($victim): $*" >&2; }

# Waits (at most 1.5 s) for the pids given; records the slowest; flags a hang.
await() {
    local start=$1; shift
    local p
    while :; do
        local alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        (( alive == 0 )) && break
        if (( $(now_ms) - start > 1500 )); then
            fail "a survivor still runs 1.5 s after the kill"
            for p in "$@"; do kill -9 "$p" 2>/dev/null; done
            break
        fi
        sleep 0.005
    done
    local took=$(( $(now_ms) - start ))
    (( took > slowest )) && slowest=$took
}

# The exit status of a reaped pid; fails the run on death by a signal.
status() {
    wait "$1"; local rc=$?
    (( rc > 128 && rc != 137 )) && fail "pid $1 died by signal $((rc - 128))"
    echo "$rc"
}

is_prefix() { cmp -s "$1" <(head -c "$(stat -c %s "$1")" "$2"); }

for case in ${CASES:-topic many service}; do
    for i in $(seq 1 "$runs"); do
        total=$((total + 1))
        name="/ipcraft-torture-$$-$case-$i"
        names+=("$name")
        lines=$(( RANDOM % 20000 + 1 ))
        head -n "$lines" "$work/input" > "$work/in"
        delay="0.0$(printf '%02d' $(( RANDOM % 40 )))"
        # Outputs emptied before each run (a side killed before its shell
        # opened its output would leave the previous run's there).
        : > "$work/s1"; : > "$work/s2"; : > "$work/out"
        case $case in
        topic)
            "$bin" topic create "$name" --capacity 4K --subscribers 2 || exit 1
            "$bin" topic sub "$name" --timeout 0.8 > "$work/s1" 2> /dev/null & s1=$!
            "$bin" topic sub "$name" --timeout 0.8 > "$work/s2" 2> /dev/null & s2=$!
            # Both subscribed before the stream starts (block policy: then
            # nothing may be lost).
            until [ "$("$bin" topic stat "$name" | grep -c alive)" -ge 2 ]; do sleep 0.002; done
            "$bin" topic pub "$name" < "$work/in" 2> /dev/null & p=$!
            sleep "$delay"
            if (( RANDOM % 2 )); then
                victim=publisher; kill -9 $p; t=$(now_ms); wait $p 2>/dev/null
                await "$t" $s1 $s2
                for s in 1 2; do
                    pid=$([ $s = 1 ] && echo $s1 || echo $s2)
                    rc=$(status "$pid")
                    is_prefix "$work/s$s" "$work/in" || fail "subscriber $s printed more than a prefix"
                    if [ "$rc" = 0 ] && ! cmp -s "$work/s$s" "$work/in"; then fail "subscriber $s exited 0 on a cut stream"; fi
                done
            else
                victim=subscriber; kill -9 $s1; t=$(now_ms); wait $s1 2>/dev/null
                # The publisher has all its input to send: allow for that.
                await "$(( t + 1000 ))" $p $s2
                [ "$(status $p)" = 0 ] || fail "the publisher failed"
                [ "$(status $s2)" = 0 ] || fail "the other subscriber failed"
                cmp -s "$work/s2" "$work/in" || fail "the other subscriber lost data"
            fi
            "$bin" topic rm "$name"
            ;;
        many)
            "$bin" chan create "$name" --senders 2 --capacity 4K || exit 1
            sed 's/^/a /' "$work/in" > "$work/ina"
            sed 's/^/b /' "$work/in" > "$work/inb"
            "$bin" chan send "$name" --timeout 0.8 < "$work/ina" 2> /dev/null & a=$!
            "$bin" chan send "$name" --timeout 0.8 < "$work/inb" 2> "$work/err-b" & b=$!
            # Both attached before the receiver comes: it ends once every
            # sender that attached has closed.
            until [ "$("$bin" chan stat "$name" | grep -c 'sender=alive')" -ge 2 ]; do sleep 0.002; done
            "$bin" chan recv "$name" > "$work/out" 2> /dev/null & r=$!
            sleep "$delay"
            if (( RANDOM % 3 )); then
                victim=sender; kill -9 $a; t=$(now_ms); wait $a 2>/dev/null
                await "$(( t + 1000 ))" $r $b
                [ "$(status $b)" = 0 ] || fail "the other sender failed: $(cat "$work/err-b")"
                rc=$(status $r)
                grep '^b ' "$work/out" | cmp -s - "$work/inb" || fail "the other sender's lines"
                grep '^a ' "$work/out" > "$work/outa"
                is_prefix "$work/outa" "$work/ina" || fail "the victim's lines are not a prefix"
                if [ "$rc" = 0 ] && ! cmp -s "$work/outa" "$work/ina"; then fail "the receiver exited 0 on a cut stream"; fi
            else
                victim=receiver; kill -9 $r; t=$(now_ms); wait $r 2>/dev/null
                await "$t" $a $b
                for s in $a $b; do
                    rc=$(status $s)
                    # Exit 0 only if the receiver took all of it before dying.
                    if [ "$rc" = 0 ]; then
                        which=$([ $s = $a ] && echo a || echo b)
                        grep "^$which " "$work/out" | cmp -s - "$work/in$which" || fail "sender $which exited 0, receiver lacks data"
                    fi
                done
            fi
            "$bin" chan rm "$name"
            ;;
        service)
            "$bin" service serve "$name" --clients 4 2> /dev/null & srv=$!
            pids=()
            for c in 1 2 3; do
                ( for k in $(seq 1 50); do
                      got=$("$bin" service call "$name" "client $c call $k" --timeout 0.8 2>> "$work/err-client$c") || { echo "client $c: $(tail -1 "$work/err-client$c")" >&2; exit 1; }
                      [ "$got" = "client $c call $k" ] || { echo "client $c got '$got'" >&2; exit 3; }
                  done ) & pids+=($!)
            done
            sleep "$delay"
            if (( RANDOM % 2 )); then
                victim=server; kill -9 $srv; t=$(now_ms); wait $srv 2>/dev/null
                # A call in flight fails within a second; the loops then stop.
                await "$(( t + 1000 ))" "${pids[@]}"
                for c in "${pids[@]}"; do [ "$(status "$c")" = 3 ] && fail "a client got another's response"; done
            else
                victim=client
                pkill -9 -f "service call $name client 1 " ; t=$(now_ms)
                await "$(( t + 8000 ))" "${pids[@]:1}"
                status "${pids[0]}" > /dev/null
                for c in "${pids[@]:1}"; do [ "$(status "$c")" = 0 ] || fail "another client failed"; done
                kill -9 $srv; wait $srv 2>/dev/null
            fi
            rm -f "/dev/shm$name"
            ;;
        esac
    done
done
echo "torture-patterns: $total runs, $failures failures, slowest survivor ${slowest} ms after its deadline's start"
(( failures == 0 ))
