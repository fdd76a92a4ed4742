#!/usr/bin/env bash
# smtp-accept-bench.sh -- messages ACCEPTED per second: ugem against a Postfix
# relay on the same machine, in the same run, with the same load generator.
#
#   smtp-source -s CONC -m COUNT -l SIZE --SMTP--> ugem     127.0.0.1:2530 --> smtp-sink 127.0.0.1:2526
#                                         --SMTP--> postfix  127.0.0.1:2525 --> smtp-sink 127.0.0.1:2526
#
# What is timed: how long smtp-source takes to send COUNT messages over CONC
# parallel sessions, one message per connection. smtp-source waits for the
# 250 after DATA of each message, and both servers answer 250 only once the
# message is fsynced to disk (ugem: queue::enqueue; Postfix: cleanup(8) fsyncs
# each queue file, and no setting turns that off), so this is the rate of
# durable acceptance. smtp-source aborts on any other reply, so a run that
# exits 0 had every message accepted.
#
# * Both relay everything to the same smtp-sink WHILE they accept (as a
#   production relay would; ugem through a `[delivery.routes] "*"` route) and
#   their queues drain between runs; the end-to-end rate (until the sink has
#   every message) is shown too. bench/relay-bench.sh, with
#   bench/relay-gateway.sh, is the reference end-to-end comparison.
# * ugem runs from target/release/ugem (built first, BUILD=1) with a temporary
#   config; the domain agency.example is registered with server 127.0.0.1
#   through the admin API (`ugem domain add`), so smtp-source's
#   sender@agency.example -> rcpt@external.example is outbound relay.
# * Postfix is a private instance built like relay-bench.sh builds it: own
#   config, queue and log under the temp dir, relay for 127.0.0.0/8 only,
#   everything to [127.0.0.1]:2526, no DNS, no TLS, no local delivery.
# * Order: scenario -> [fresh ugem (empty data dir) and fresh Postfix,
#   warm-up] -> REPS x (each target in turn), so targets alternate run by run.
# * Everything started here is stopped by PID at exit (ugem: SIGTERM then
#   SIGKILL; Postfix: "postfix -c DIR stop"; smtp-sink), the temp dir removed.
#
# Usage (as root, from anywhere in the repository):
#   bench/smtp-accept-bench.sh                        # both, default scenarios
#   TARGETS=postfix bench/smtp-accept-bench.sh        # the Postfix half only
#   SCENARIOS="10:5:2000" REPS=1 bench/smtp-accept-bench.sh
#
# Knobs (environment):
#   SCENARIOS      "conc:sizeKiB:count ..." (default below: 1, 10, 50 sessions x 5, 100 KiB)
#   REPS           timed runs per scenario and target (default 3); the table shows the median
#   WARMUP         untimed messages per target at the start of each scenario (default 300)
#   TARGETS        "ugem postfix" (default), or one of them
#   BUILD          1 = cargo build --release first (default); 0 = use UGEM_BIN as it is
#   UGEM_BIN       ugem binary (default: <repo>/target/release/ugem)
#   UGEM_ADDR      ugem SMTP listener (127.0.0.1:2530); UGEM_ADMIN_ADDR admin API (127.0.0.1:8030)
#   UGEM_LOG_LEVEL server.log_level (info); the log goes to <temp>/ugem.log
#   UGEM_EXTRA_TOML  TOML appended to the generated config (new tables only, e.g. a
#                  [governor] section that lifts rate limits); UGEM_SECTION__KEY
#                  environment variables reach ugem too
#   POSTFIX_ADDR   private Postfix (127.0.0.1:2525); SINK_ADDR smtp-sink (127.0.0.1:2526)
#   POSTFIX_PROCESS_LIMIT  default_process_limit (200); POSTFIX_EXTRA "param=value ..." main.cf
#   FRESH          1 = restart ugem (empty queue) and Postfix (fresh process pool) per scenario
#   FROM / RCPT    envelope (sender@agency.example / rcpt@external.example)
#   DRAIN_TIMEOUT  max seconds to wait for Postfix to relay everything to the sink (180)
#   SETTLE         seconds to idle between runs (1)
#   SPOOL_PARENT   where the temp dir goes (/var/tmp: a real disk, not tmpfs)
#   FSYNC_TEST     1 = print the disk's fsync rate first, if fsync-rate.py is found (default 1)
#   RESULTS        file to append the raw per-run CSV to (optional)
#   KEEP           1 = keep the temp dir (logs, configs, ugem's queue) for inspection
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED_BENCH=${SHARED_BENCH:-$HERE}  # install-deps.sh, fsync-rate.py

SCENARIOS=${SCENARIOS:-"1:5:3000 10:5:6000 50:5:6000 1:100:2000 10:100:3000 50:100:3000"}
REPS=${REPS:-3}
WARMUP=${WARMUP:-300}
TARGETS=${TARGETS:-"ugem postfix"}
BUILD=${BUILD:-1}
UGEM_BIN=${UGEM_BIN:-$REPO/target/release/ugem}
UGEM_ADDR=${UGEM_ADDR:-127.0.0.1:2530}
UGEM_ADMIN_ADDR=${UGEM_ADMIN_ADDR:-127.0.0.1:8030}
UGEM_LOG_LEVEL=${UGEM_LOG_LEVEL:-info}
UGEM_EXTRA_TOML=${UGEM_EXTRA_TOML:-}
POSTFIX_ADDR=${POSTFIX_ADDR:-127.0.0.1:2525}
SINK_ADDR=${SINK_ADDR:-127.0.0.1:2526}
POSTFIX_PROCESS_LIMIT=${POSTFIX_PROCESS_LIMIT:-200}
POSTFIX_EXTRA=${POSTFIX_EXTRA:-}
FRESH=${FRESH:-1}
FROM=${FROM:-sender@agency.example}
RCPT=${RCPT:-rcpt@external.example}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-180}
SETTLE=${SETTLE:-1}
SPOOL_PARENT=${SPOOL_PARENT:-/var/tmp}
FSYNC_TEST=${FSYNC_TEST:-1}
RESULTS=${RESULTS:-}
KEEP=${KEEP:-0}
HELO=agency.example

PATH=$PATH:/usr/sbin:/sbin:/usr/lib/postfix/sbin
[[ $(id -u) == 0 ]] || { echo "run as root (smtp-sink -u, postfix)" >&2; exit 2; }

want() { [[ " $TARGETS " == *" $1 "* ]]; }
want ugem || want postfix || { echo "TARGETS must name ugem and/or postfix (got: $TARGETS)" >&2; exit 2; }
for t in $TARGETS; do
  [[ $t == ugem || $t == postfix ]] || { echo "unknown target: $t" >&2; exit 2; }
done

# ---------------------------------------------------------------- dependencies
if ! command -v smtp-source >/dev/null; then
  if [[ -x $SHARED_BENCH/install-deps.sh ]] || [[ -f $SHARED_BENCH/install-deps.sh ]]; then
    bash "$SHARED_BENCH/install-deps.sh"
  else # the same, inline: Postfix without a system instance
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string bench.localdomain" | debconf-set-selections
    apt-get install -y --no-install-recommends postfix swaks time iproute2 python3 procps
  fi
fi
for tool in smtp-source smtp-sink postfix postconf python3 ss; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 2; }
done

if want ugem; then
  if [[ $BUILD == 1 ]]; then
    echo "building: cargo build --release (in $REPO)" >&2
    (cd "$REPO" && cargo build --release)
  fi
  [[ -x $UGEM_BIN ]] || { echo "no ugem binary at $UGEM_BIN (BUILD=1 builds it)" >&2; exit 2; }
fi

WORK=$(mktemp -d "$SPOOL_PARENT/ugem-accept-bench.XXXXXX")
chmod 755 "$WORK"
ROWS=$WORK/rows.csv
: >"$ROWS"
SINK_OUT=$WORK/sink.out
SINK_PID=
SOURCE_PID=
UGEM_PID=
UGEM_CONF=$WORK/ugem/ugem.toml
UGEM_DATA=$WORK/ugem/data
UGEM_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
PF_CONF=
PF_QUEUE=

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

listening() { # host:port -> 0 if something listens there
  [[ -n $(ss -Hltn "sport = :${1##*:}" 2>/dev/null | awk -v a="$1" '$4 == a || $4 == "0.0.0.0:" substr(a, index(a, ":") + 1) || $4 ~ /^\*:/') ]]
}

wait_listen() { # host:port timeout_s [pid that must stay alive]
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    listening "$1" && return 0
    if [[ -n ${3:-} ]] && ! kill -0 "$3" 2>/dev/null; then return 1; fi
    sleep 0.1
  done
  return 1
}

stop_pid() { # pid name: SIGTERM, up to 30 s, then SIGKILL
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  log "stopping $2 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "WARNING: $2 (pid $pid) ignored SIGTERM for 30 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  [[ -n $SOURCE_PID ]] && stop_pid "$SOURCE_PID" smtp-source
  [[ -n $UGEM_PID ]] && stop_pid "$UGEM_PID" ugem
  [[ -n $PF_CONF ]] && stop_postfix
  [[ -n $SINK_PID ]] && stop_pid "$SINK_PID" smtp-sink
  if [[ $KEEP == 1 ]]; then
    log "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- smtp-sink
sink_count() { # last complete "sess=A quit=B mesg=C\r" record -> C
  local s
  s=$(tail -c 512 "$SINK_OUT" 2>/dev/null) || true
  [[ $s == *$'\r'* ]] || { echo 0; return; }
  s=${s%$'\r'*}
  s=${s##*$'\r'}
  s=${s##*mesg=}
  [[ $s =~ ^[0-9]+$ ]] && echo "$s" || echo 0
}

start_sink() {
  listening "$SINK_ADDR" && { echo "something already listens on $SINK_ADDR" >&2; exit 2; }
  # -c: running counters on stdout; -u nobody: drop root; backlog 1000
  smtp-sink -c -u nobody "$SINK_ADDR" 1000 >"$SINK_OUT" 2>"$WORK/sink.err" &
  SINK_PID=$!
  wait_listen "$SINK_ADDR" 10 "$SINK_PID" || { echo "smtp-sink did not start" >&2; cat "$WORK/sink.err" >&2; exit 2; }
  log "smtp-sink pid $SINK_PID on $SINK_ADDR"
}

wait_sink() { # target_count timeout_s -> 0 when reached
  local want=$1 deadline=$(($(date +%s) + $2))
  while (($(sink_count) < want)); do
    (($(date +%s) < deadline)) || return 1
    sleep 0.02
  done
}

# ---------------------------------------------------------------- postfix
# Built the way bench/relay-bench.sh builds it.
start_postfix() {
  listening "$POSTFIX_ADDR" && { echo "something already listens on $POSTFIX_ADDR" >&2; exit 2; }
  PF_CONF=$WORK/postfix/etc
  PF_QUEUE=$WORK/postfix/spool
  local data=$WORK/postfix/data
  mkdir -p "$PF_CONF" "$PF_QUEUE" "$data"
  chown postfix "$data"
  cp /usr/share/postfix/master.cf.dist "$PF_CONF/master.cf"
  : >"$PF_CONF/main.cf"
  local sink_host=${SINK_ADDR%:*} sink_port=${SINK_ADDR##*:}
  local -a params=(
    compatibility_level=3.6
    queue_directory="$PF_QUEUE"
    data_directory="$data"
    maillog_file="$WORK/postfix/maillog"
    maillog_file_prefixes="$WORK"
    myhostname=accept-bench.localdomain
    mydomain=localdomain
    myorigin=\$myhostname
    inet_interfaces=127.0.0.1
    inet_protocols=ipv4
    # relay only for loopback clients, everything to the sink
    mynetworks=127.0.0.0/8
    smtpd_relay_restrictions='permit_mynetworks, reject'
    relayhost="[$sink_host]:$sink_port"
    # no local delivery at all
    mydestination=
    local_recipient_maps=
    local_transport='error:local delivery disabled'
    alias_maps=
    alias_database=
    biff=no
    append_dot_mydomain=no
    # no DNS anywhere
    smtp_dns_support_level=disabled
    smtp_host_lookup=native
    smtpd_peername_lookup=no
    # no TLS on either side (plain SMTP on loopback, like smtp-source/smtp-sink)
    smtpd_tls_security_level=none
    smtp_tls_security_level=none
    # enough processes for 50 concurrent clients + delivery agents
    default_process_limit="$POSTFIX_PROCESS_LIMIT"
  )
  # shellcheck disable=SC2206
  local -a extra=($POSTFIX_EXTRA)
  local p
  for p in "${params[@]}" "${extra[@]}"; do
    [[ $p == \#* ]] && continue
    postconf -c "$PF_CONF" -e "$p"
  done
  # no chroot (queue lives in a temp dir), listen on POSTFIX_ADDR instead of :25
  postconf -c "$PF_CONF" -F '*/*/chroot = n'
  postconf -c "$PF_CONF" -M# smtp/inet
  postconf -c "$PF_CONF" -M "$POSTFIX_ADDR/inet = $POSTFIX_ADDR inet n - n - - smtpd"
  postfix -c "$PF_CONF" check
  run_postfix
}

run_postfix() {
  postfix -c "$PF_CONF" start >/dev/null 2>&1 || { echo "postfix start failed" >&2; cat "$WORK/postfix/maillog" >&2; exit 2; }
  wait_listen "$POSTFIX_ADDR" 20 || { echo "postfix did not listen on $POSTFIX_ADDR" >&2; exit 2; }
  log "postfix $(postconf -c "$PF_CONF" -h mail_version) (master pid $(tr -d ' ' <"$PF_QUEUE/pid/master.pid")) on $POSTFIX_ADDR, config $PF_CONF"
}

stop_postfix() {
  local mpid i
  mpid=$(tr -d ' ' <"$PF_QUEUE/pid/master.pid" 2>/dev/null) || true
  log "stopping postfix (postfix -c $PF_CONF stop, master pid ${mpid:-?})"
  postfix -c "$PF_CONF" stop >/dev/null 2>&1 || true
  [[ -n $mpid ]] || return 0
  for ((i = 0; i < 100; i++)); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$mpid" 2>/dev/null; then
    postfix -c "$PF_CONF" abort >/dev/null 2>&1 || true
    sleep 1
    kill -KILL "$mpid" 2>/dev/null || true
  fi
  # master is gone; give its children a moment to notice and exit
  for ((i = 0; i < 50; i++)); do listening "$POSTFIX_ADDR" || break; sleep 0.1; done
}

postfix_queue_len() {
  local d n=0
  for d in maildrop incoming active deferred hold; do
    [[ -d $PF_QUEUE/$d ]] && n=$((n + $(find "$PF_QUEUE/$d" -type f | wc -l)))
  done
  echo "$n"
}

postfix_wait_idle() {
  local i
  for ((i = 0; i < DRAIN_TIMEOUT * 10; i++)); do
    [[ $(postfix_queue_len) == 0 ]] && return 0
    sleep 0.1
  done
  log "WARNING: postfix queue not empty: $(postfix_queue_len) files"
}

# ---------------------------------------------------------------- ugem
write_ugem_config() {
  mkdir -p "${UGEM_CONF%/*}"
  cat >"$UGEM_CONF" <<EOF
# written by bench/smtp-accept-bench.sh
[server]
hostname = "accept-bench.localdomain"
data_dir = "$UGEM_DATA"
postmaster = "postmaster@agency.example"
log_level = "$UGEM_LOG_LEVEL"

[smtp]
listen = ["$UGEM_ADDR"]
max_connections = 10000
max_connections_per_ip = 1000
min_free_space = "16MiB"

[admin]
listen = "$UGEM_ADMIN_ADDR"
token = "$UGEM_TOKEN"

# Everything to the sink, as Postfix's relayhost does (no DNS, no TLS).
[delivery]
tls = "none"

[delivery.routes]
"*" = "$SINK_ADDR"

# One sender floods on purpose: limits and novelty allowances far above the bench's
# rate, so the governor's checks are measured but never refuse or suspend.
[governor]
domain_messages_per_hour = 1000000000
domain_recipients_per_hour = 1000000000
sender_messages_per_hour = 1000000000
sender_recipients_per_hour = 1000000000
sender_messages_per_minute = 1000000000
sender_recipients_per_minute = 1000000000
connections_per_minute = 1000000000
unproven_recipients_5min = 1000000000
unproven_recipients_hour = 1000000000
new_recipients_5min = 1000000000
new_recipients_hour = 1000000000
EOF
  if [[ -n $UGEM_EXTRA_TOML ]]; then
    printf '\n# UGEM_EXTRA_TOML\n%s\n' "$UGEM_EXTRA_TOML" >>"$UGEM_CONF"
  fi
  chmod 600 "$UGEM_CONF"
}

ugem_cli() {
  UGEM_ADMIN_TOKEN=$UGEM_TOKEN "$UGEM_BIN" --config "$UGEM_CONF" "$@"
}

start_ugem() { # a fresh data dir: empty queue and store
  local a
  for a in "$UGEM_ADDR" "$UGEM_ADMIN_ADDR"; do
    listening "$a" && { echo "something already listens on $a" >&2; exit 2; }
  done
  rm -rf "$UGEM_DATA"
  mkdir -p "$UGEM_DATA"
  "$UGEM_BIN" check-config --config "$UGEM_CONF" >>"$WORK/ugem.log" 2>&1 ||
    { echo "ugem check-config failed:" >&2; tail -20 "$WORK/ugem.log" >&2; exit 2; }
  echo "---- ugem serve $(date +%T)" >>"$WORK/ugem.log"
  "$UGEM_BIN" serve --config "$UGEM_CONF" >>"$WORK/ugem.log" 2>&1 &
  UGEM_PID=$!
  if ! wait_listen "$UGEM_ADDR" 30 "$UGEM_PID" || ! wait_listen "$UGEM_ADMIN_ADDR" 30 "$UGEM_PID"; then
    echo "ugem did not listen on $UGEM_ADDR and $UGEM_ADMIN_ADDR; log:" >&2
    tail -30 "$WORK/ugem.log" >&2
    exit 2
  fi
  local i ok=0
  for ((i = 0; i < 20; i++)); do
    if ugem_cli domain add agency.example --server 127.0.0.1 --contact it@agency.example --reason bench \
      >>"$WORK/ugem.log" 2>&1; then
      ok=1
      break
    fi
    sleep 0.5
  done
  ((ok)) || { echo "ugem domain add agency.example failed; log:" >&2; tail -20 "$WORK/ugem.log" >&2; exit 2; }
  # one message must be accepted before anything is timed
  if ! smtp-source -m 1 -l 1024 -M "$HELO" -f "$FROM" -t "$RCPT" "$UGEM_ADDR" >"$WORK/probe.log" 2>&1; then
    echo "ugem did not accept a probe message:" >&2
    cat "$WORK/probe.log" >&2
    tail -20 "$WORK/ugem.log" >&2
    exit 2
  fi
  log "ugem pid $UGEM_PID on $UGEM_ADDR (admin $UGEM_ADMIN_ADDR), data $UGEM_DATA, agency.example registered"
}

# ---------------------------------------------------------------- measurement
proc_ticks() { # pid -> utime+stime clock ticks (0 if gone)
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

cpu_busy_ticks() { # "busy total" jiffies of all CPUs
  awk '/^cpu /{t=0; for (i=2;i<=NF;i++) t+=$i; print t-$5-$6, t}' /proc/stat
}

addr_of() { if [[ $1 == ugem ]]; then echo "$UGEM_ADDR"; else echo "$POSTFIX_ADDR"; fi; }

send() { # addr conc kib count log -> smtp-source's exit status
  # in the background + wait, so that INT/TERM run the cleanup at once
  smtp-source -s "$2" -m "$4" -l $(($3 * 1024)) -M "$HELO" -f "$FROM" -t "$RCPT" "$1" >"$5" 2>&1 &
  SOURCE_PID=$!
  local rc=0
  wait "$SOURCE_PID" || rc=$?
  SOURCE_PID=
  return "$rc"
}

warmup() { # name conc kib count
  local base
  base=$(sink_count)
  send "$(addr_of "$1")" "$2" "$3" "$4" "$WORK/warmup.log" || log "WARNING: warm-up smtp-source failed for $1: $(head -c 200 "$WORK/warmup.log")"
  wait_sink $((base + $4)) "$DRAIN_TIMEOUT" || log "WARNING: $1 warm-up not fully relayed"
  if [[ $1 == postfix ]]; then postfix_wait_idle; fi
}

# one timed run: name conc kib count rep -> a CSV row in $ROWS
run_one() {
  local name=$1 conc=$2 kib=$3 count=$4 rep=$5
  local addr base t0 t1 t2 rc=0 c0 c1 pct u0=0 u1=0 ucpu=NA status=ok e2e=NA got
  addr=$(addr_of "$name")
  base=$(sink_count)
  [[ $name == ugem ]] && u0=$(proc_ticks "$UGEM_PID")
  read -r -a c0 < <(cpu_busy_ticks)
  t0=$(date +%s.%N)
  send "$addr" "$conc" "$kib" "$count" "$WORK/source.log" || rc=$?
  t1=$(date +%s.%N)
  read -r -a c1 < <(cpu_busy_ticks)
  pct=$(awk -v b=$((c1[0] - c0[0])) -v t=$((c1[1] - c0[1])) 'BEGIN{printf "%.0f", t ? 100*b/t : 0}')
  if [[ $name == ugem ]]; then
    u1=$(proc_ticks "$UGEM_PID")
    ucpu=$(awk -v d=$((u1 - u0)) -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", d / hz}')
    kill -0 "$UGEM_PID" 2>/dev/null || status="ugem_died"
  fi
  if ((rc != 0)); then
    status="source_rc=$rc:$(tr '\n,' '  ' <"$WORK/source.log" | cut -c1-100)"
  fi
  if ((rc == 0)); then
    if wait_sink $((base + count)) "$DRAIN_TIMEOUT"; then
      t2=$(date +%s.%N)
      e2e=$(awk -v m="$count" -v t0="$t0" -v t2="$t2" 'BEGIN{printf "%.1f", m/(t2-t0)}')
    else
      got=$(($(sink_count) - base))
      status="$status;sink_got=$got/$count"
    fi
  fi
  local row
  row=$(awk -v n="$name" -v c="$conc" -v k="$kib" -v m="$count" -v r="$rep" -v t0="$t0" -v t1="$t1" \
    -v e2e="$e2e" -v pct="$pct" -v u="$ucpu" -v st="$status" 'BEGIN{
      a = t1 - t0
      printf "%s,%d,%d,%d,%d,%.3f,%.1f,%s,%s,%s,%s\n", n, c, k, m, r, a, m/a, e2e, pct, u, st }')
  echo "$row" >>"$ROWS"
  if [[ -n $RESULTS ]]; then
    [[ -s $RESULTS ]] || echo "utc,target,conc,KiB,msgs,rep,accept_s,accept_msg_s,e2e_msg_s,cpu_busy_pct,ugem_cpu_s,status" >"$RESULTS"
    echo "$(date -u +%FT%TZ),$row" >>"$RESULTS"
  fi
  log "run $row"
  if [[ $name == postfix ]]; then postfix_wait_idle; fi
  if [[ $status != ok ]]; then
    log "WARNING: $name run failed: $status"
  fi
  sleep "$SETTLE"
}

median() { sort -g | awk '{v[NR]=$1} END{ if (NR==0) {print "NA"; exit} if (NR%2) print v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2 }'; }

# ---------------------------------------------------------------- main
NAMES=()
for t in ugem postfix; do want "$t" && NAMES+=("$t"); done
log "targets: ${NAMES[*]} | scenarios: $SCENARIOS | reps: $REPS | warm-up: $WARMUP | cores: $(nproc)"
log "temp dir: $WORK ($(df -PT "$WORK" | awk 'NR==2{print $2}') on $(df -P "$WORK" | awk 'NR==2{print $1}'))"
if [[ $FSYNC_TEST == 1 && -f $SHARED_BENCH/fsync-rate.py ]]; then
  log "fsync rate on $SPOOL_PARENT:"
  python3 "$SHARED_BENCH/fsync-rate.py" --dir "$SPOOL_PARENT" | sed 's/^/    /' >&2
fi

start_sink
if want postfix; then
  start_postfix
fi
if want ugem; then
  write_ugem_config
  start_ugem
fi

first=1
for sc in $SCENARIOS; do
  IFS=: read -r conc kib count <<<"$sc"
  [[ $conc =~ ^[0-9]+$ && $kib =~ ^[0-9]+$ && $count =~ ^[0-9]+$ ]] ||
    { echo "bad scenario '$sc' (want conc:sizeKiB:count)" >&2; exit 2; }
  if [[ $FRESH == 1 && $first == 0 ]]; then
    if want ugem; then stop_pid "$UGEM_PID" ugem; UGEM_PID=; start_ugem; fi
    if want postfix; then stop_postfix; run_postfix; fi
  fi
  first=0
  if ((WARMUP > 0)); then
    for name in "${NAMES[@]}"; do
      log "warm-up $name: $WARMUP msgs, c=$conc ${kib}KiB"
      warmup "$name" "$conc" "$kib" "$WARMUP"
    done
    sleep "$SETTLE"
  fi
  for ((rep = 1; rep <= REPS; rep++)); do
    for name in "${NAMES[@]}"; do
      run_one "$name" "$conc" "$kib" "$count" "$rep"
    done
  done
  if want ugem; then
    log "ugem data dir after c=$conc ${kib}KiB: $(du -sh "$UGEM_DATA" | cut -f1)"
  fi
done

echo
echo "raw runs (target,conc,KiB,msgs,rep,accept_s,accept_msg/s,e2e_msg/s,cpu_busy%,ugem_cpu_s,status):"
cat "$ROWS"
echo
echo "messages accepted per second (median of $REPS; a message counts once its 250 after DATA arrived)"
printf '%-16s %6s %12s %13s %8s %12s %12s %6s %6s\n' scenario msgs 'ugem msg/s' 'postfix msg/s' ratio 'ugem e2e' 'pf e2e msg/s' 'ugem%' 'pf%'
for sc in $(tr ' ' '\n' <<<"$SCENARIOS" | awk 'NF && !seen[$0]++'); do
  IFS=: read -r conc kib count <<<"$sc"
  sel() { # target column -> values of the runs without errors
    awk -F, -v n="$1" -v c="$conc" -v k="$kib" -v col="$2" '$1==n && $2==c && $3==k && $11=="ok" {print $col}' "$ROWS"
  }
  errs() { awk -F, -v n="$1" -v c="$conc" -v k="$kib" '$1==n && $2==c && $3==k && $11!="ok"' "$ROWS" | wc -l; }
  u=NA p=NA ue=NA pe=NA ucpu=NA pcpu=NA
  if want ugem; then u=$(sel ugem 7 | median); ue=$(sel ugem 8 | awk '$1 != "NA"' | median); ucpu=$(sel ugem 9 | median); fi
  if want postfix; then p=$(sel postfix 7 | median); pe=$(sel postfix 8 | awk '$1 != "NA"' | median); pcpu=$(sel postfix 9 | median); fi
  ratio=$(awk -v u="$u" -v p="$p" 'BEGIN{ if (u=="NA" || p=="NA" || p==0) print "NA"; else printf "%.2f", u/p }')
  note=""
  for name in "${NAMES[@]}"; do
    n=$(errs "$name")
    if ((n > 0)); then note="$note  ($name: $n failed run(s), not counted)"; fi
  done
  printf '%-16s %6s %12s %13s %8s %12s %12s %6s %6s%s\n' "c=$conc ${kib}KiB" "$count" "$u" "$p" "$ratio" "$ue" "$pe" "$ucpu" "$pcpu" "$note"
done
echo
echo "ratio = ugem/postfix acceptance rate; ugem%/pf% = whole-machine CPU busy during the run ($(nproc) cores)."
echo "e2e = messages / (first connection .. the sink has them all): both relay to smtp-sink while accepting."
if want postfix && [[ -f $WORK/postfix/maillog ]]; then
  echo "postfix delivery log: sent=$(grep -c 'status=sent' "$WORK/postfix/maillog" || true)" \
    "deferred=$(grep -c 'status=deferred' "$WORK/postfix/maillog" || true)" \
    "bounced=$(grep -c 'status=bounced' "$WORK/postfix/maillog" || true)" \
    "warnings=$(grep -c 'warning:' "$WORK/postfix/maillog" || true)"
fi
echo "sink total messages: $(sink_count)"
