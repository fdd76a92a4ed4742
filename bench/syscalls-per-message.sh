#!/usr/bin/env bash
# syscalls-per-message.sh -- what one relayed message costs ugem in system
# calls at one connection at a time (issue #20 item 1): ugem as
# relay-gateway.sh starts it, smtp-sink behind it, `smtp-source -s 1` in
# front, and `strace -c -f` attached to the gateway for N messages.
#
#   sudo bench/syscalls-per-message.sh            # N=2000, 5 KiB
#   sudo N=5000 SIZE=102400 bench/syscalls-per-message.sh
#
# strace slows every call, so the rate printed is not a benchmark; the
# counts per message are the point (fsyncs, writes, wake-ups). Needs root
# (ptrace, smtp-sink -u), smtp-source/smtp-sink (postfix) and strace.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${N:-2000}
SIZE=${SIZE:-5120}
BIN=${UGEM_BIN:-$HERE/../target/release/ugem}
TMP=$(mktemp -d /var/tmp/ugem-syscalls.XXXXXX)
SINK=127.0.0.1:2526
ADDR=127.0.0.1:2530
cleanup() {
  [[ -n ${STRACE_PID:-} ]] && kill -INT "$STRACE_PID" 2>/dev/null || true
  [[ -n ${GW_PID:-} ]] && kill -TERM "$GW_PID" 2>/dev/null || true
  [[ -n ${SINK_PID:-} ]] && kill -TERM "$SINK_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
for tool in smtp-source smtp-sink strace; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
# -c: count messages; the count goes to the sink's log on exit.
smtp-sink -u nobody -c "$SINK" 1000 >"$TMP/sink.log" 2>&1 &
SINK_PID=$!
BENCH_TMP=$TMP UGEM_BIN=$BIN UGEM_ADDR=$ADDR SINK_ADDR=$SINK "$HERE/relay-gateway.sh" &
GW_PID=$!
for _ in $(seq 1 200); do
  (exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR#*:}") 2>/dev/null && break
  sleep 0.1
done
# relay-gateway.sh execs the server: its pid is the gateway's.
smtp-source -s 1 -m 200 -l "$SIZE" -M agency.example -f sender@agency.example \
  -t rcpt@external.example "$ADDR"   # warm-up, not counted
sleep 2
strace -c -f -p "$GW_PID" -o "$TMP/strace.txt" &
STRACE_PID=$!
sleep 1
start=$(date +%s.%N)
smtp-source -s 1 -m "$N" -l "$SIZE" -M agency.example -f sender@agency.example \
  -t rcpt@external.example "$ADDR"
end=$(date +%s.%N)
sleep 3   # deliveries of the last messages
kill -INT "$STRACE_PID"
wait "$STRACE_PID" 2>/dev/null || true
STRACE_PID=
echo "$N messages of $SIZE B at one connection, $(echo "$N / ($end - $start)" | bc -l | cut -c1-7) msg/s under strace"
echo "calls per message (accepted and relayed), by system call:"
awk -v n="$N" '$1 ~ /^[0-9.]+$/ && NF >= 5 {
  calls = $4; name = $NF; if (NF == 6) { calls = $4 }
  printf "  %-16s %8.2f\n", name, calls / n }' "$TMP/strace.txt" | sort -k2 -n -r | head -25
echo "(raw strace -c output:)"
cat "$TMP/strace.txt"
