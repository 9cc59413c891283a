#!/usr/bin/env bash
# Plays "another program on a busy host": creates and removes objects in
# /dev/shm, /tmp and /dev/mqueue in a loop until killed, so the tests prove
# they assert only on the objects they create. Removes its own on exit.
# usage: scripts/busy-host.sh &   ...   kill $!
set -u
tag="busyhost-$$"
cleanup() { rm -f /dev/shm/"$tag"-* /tmp/"$tag"-* /dev/mqueue/"$tag"-* 2>/dev/null; exit 0; }
trap cleanup TERM INT EXIT
i=0
while :; do
    i=$((i + 1))
    echo x > "/dev/shm/$tag-$i"
    mkfifo "/tmp/$tag-fifo-$i" 2>/dev/null
    [ -w /dev/mqueue ] && : > "/dev/mqueue/$tag-$i" 2>/dev/null
    old=$((i - 3))
    rm -f "/dev/shm/$tag-$old" "/tmp/$tag-fifo-$old" "/dev/mqueue/$tag-$old" 2>/dev/null
    sleep 0.002
done
