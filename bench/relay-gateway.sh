#!/usr/bin/env bash
# relay-gateway.sh -- starts ugem as a relay for bench/relay-bench.sh:
# listens on $UGEM_ADDR (127.0.0.1:2530), relays everything to the harness's
# smtp-sink ($SINK_ADDR, 127.0.0.1:2526), with agency.example registered for
# 127.0.0.1 (the harness sends sender@agency.example -> rcpt@external.example).
#
#   TARGETS="postfix=127.0.0.1:2525 ugem=127.0.0.1:2530" \
#   CMD_ugem="$PWD/bench/relay-gateway.sh" bench/relay-bench.sh
#
# The domain is registered by a first, private instance (admin API on a
# spare port, SMTP on an ephemeral one) that is then stopped; the store
# keeps the registration, and the serving instance starts with it, so the
# harness never sees the SMTP port before the domain exists.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${UGEM_BIN:-$HERE/../target/release/ugem}
DIR=${BENCH_TMP:-$(mktemp -d)}/ugem
UGEM_ADDR=${UGEM_ADDR:-127.0.0.1:2530}
SINK_ADDR=${SINK_ADDR:-127.0.0.1:2526}
ADMIN_ADDR=${UGEM_ADMIN_ADDR:-127.0.0.1:8030}
TOKEN=bench-admin-token
mkdir -p "$DIR"
cat > "$DIR/ugem.toml" <<TOML
[server]
hostname = "ugem.bench.localdomain"
data_dir = "var"
log_level = "warn"

[smtp]
listen = ["$UGEM_ADDR"]
max_connections = 5000
max_connections_per_ip = 5000
min_free_space = "64MiB"

[delivery]
tls = "none"
max_connections = 200
max_connections_per_destination = 50

[delivery.routes]
"*" = "$SINK_ADDR"

[admin]
listen = "$ADMIN_ADDR"
token = "$TOKEN"

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
TOML
UGEM_SMTP__LISTEN=127.0.0.1:0 "$BIN" serve --config "$DIR/ugem.toml" 2>"$DIR/register.log" &
pid=$!
for _ in $(seq 1 100); do
  if UGEM_ADMIN_TOKEN=$TOKEN "$BIN" --admin "http://$ADMIN_ADDR" domain list >/dev/null 2>&1; then break; fi
  sleep 0.1
done
UGEM_ADMIN_TOKEN=$TOKEN "$BIN" --admin "http://$ADMIN_ADDR" domain add agency.example \
  --server 127.0.0.1 --contact it@agency.example --reason bench >/dev/null
kill -TERM "$pid"
wait "$pid" || true
exec "$BIN" serve --config "$DIR/ugem.toml"
