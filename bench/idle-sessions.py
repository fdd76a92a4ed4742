#!/usr/bin/env python3
"""idle-sessions.py -- memory of many idle SMTP sessions, and whether they slow
the sessions that work (issue #20 item 2).

    python3 bench/idle-sessions.py [--sessions 10000] [--bin target/release/ugem]

Starts its own ugem (a temporary data folder, SMTP and admin on loopback, the
connection limits raised to fit), an smtp-sink as the next hop, then:

1. relays --messages messages with smtp-source at one connection and records
   the rate (the baseline);
2. opens --sessions SMTP connections from 127.0.0.2..127.0.0.9 (spread over
   source addresses so ephemeral ports never run out), reads each greeting,
   and leaves them idle; records the gateway's resident memory (VmRSS, from
   /proc) before and after, and per session;
3. relays the same messages again while every idle session stays open, and
   records the rate.

Prints one JSON object (and a line of text) with the figures; exits 1 when
--max-rss-mb is given and the resident memory with the sessions open is above
it. Needs smtp-source and smtp-sink (Debian package postfix) and enough file
descriptors: the script raises its own limit and the gateway's to sessions +
1024 (run as root, or with a hard limit above that).
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tool(name):
    """The path of a Postfix tool (smtp-source, smtp-sink)."""
    for p in [shutil.which(name), f"/usr/sbin/{name}", f"/usr/lib/postfix/sbin/{name}"]:
        if p and os.access(p, os.X_OK):
            return p
    sys.exit(f"idle-sessions.py: {name} not found (apt-get install postfix)")


def relay(smtp_port, messages):
    """Sends `messages` 5 KiB messages at one connection; returns msg/s."""
    start = time.monotonic()
    subprocess.run(
        [tool("smtp-source"), "-c", "-l", "5120", "-m", str(messages), "-s", "1",
         "-f", "sender@agency.example", "-t", "rcpt@external.example",
         f"127.0.0.1:{smtp_port}"],
        check=True, stdout=subprocess.DEVNULL)
    return messages / (time.monotonic() - start)


async def open_idle(smtp_port, n):
    """Opens n sessions, each greeted; returns the writers (to keep them)."""
    conns = []
    sem = asyncio.Semaphore(200)

    async def one(i):
        async with sem:
            src = f"127.0.0.{2 + i % 8}"
            r, w = await asyncio.open_connection(
                "127.0.0.1", smtp_port, local_addr=(src, 0))
            line = await asyncio.wait_for(r.readline(), 30)
            if not line.startswith(b"220"):
                raise RuntimeError(f"session {i}: {line!r}")
            conns.append((r, w))

    await asyncio.gather(*(one(i) for i in range(n)))
    return conns


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "ugem"))
    ap.add_argument("--max-rss-mb", type=float, default=None)
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)

    # This process and the gateway (which inherits the limit) each hold one
    # descriptor per session.
    want = a.sessions + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, PermissionError):
        sys.exit(f"idle-sessions.py: cannot raise the descriptor limit to {want} "
                 f"(hard limit {hard}; needs root with CAP_SYS_RESOURCE, or ulimit -Hn)")

    tmp = tempfile.mkdtemp(prefix="ugem-idle-")
    smtp_port, admin_port, sink_port = free_port(), free_port(), free_port()
    cfg = os.path.join(tmp, "ugem.toml")
    with open(cfg, "w") as f:
        f.write(f"""
[server]
hostname = "ugem.bench.localdomain"
data_dir = "var"
log_level = "warn"
[smtp]
listen = ["127.0.0.1:{smtp_port}"]
max_connections = {a.sessions + 1000}
max_connections_per_ip = {a.sessions + 1000}
min_free_space = "64MiB"
[delivery]
tls = "none"
[delivery.routes]
"*" = "127.0.0.1:{sink_port}"
[admin]
listen = "127.0.0.1:{admin_port}"
token = "bench-admin-token-0123456789"
[governor]
connections_per_minute = 1000000000
domain_messages_per_hour = 1000000000
domain_recipients_per_hour = 1000000000
sender_messages_per_hour = 1000000000
sender_recipients_per_hour = 1000000000
sender_messages_per_minute = 1000000000
sender_recipients_per_minute = 1000000000
unproven_recipients_5min = 1000000000
unproven_recipients_hour = 1000000000
new_recipients_5min = 1000000000
new_recipients_hour = 1000000000
""")
    sink = subprocess.Popen([tool("smtp-sink"), "-c", f"127.0.0.1:{sink_port}", "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gw = subprocess.Popen([a.bin, "serve", "--config", cfg], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, cwd=tmp)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", smtp_port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        env = dict(os.environ, UGEM_ADMIN_TOKEN="bench-admin-token-0123456789")
        subprocess.run([a.bin, "--config", cfg, "domain", "add", "agency.example",
                        "--server", "127.0.0.1", "--inbound", f"127.0.0.1:{sink_port}",
                        "--contact", "it@agency.example", "--reason", "bench"],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        relay(smtp_port, 50)  # warm up
        base_rate = relay(smtp_port, a.messages)
        rss_before = rss_kib(gw.pid)

        loop = asyncio.new_event_loop()
        t0 = time.monotonic()
        conns = loop.run_until_complete(open_idle(smtp_port, a.sessions))
        opened_s = time.monotonic() - t0
        time.sleep(1)
        rss_idle = rss_kib(gw.pid)
        busy_rate = relay(smtp_port, a.messages)
        rss_after = rss_kib(gw.pid)
        for _, w in conns:
            w.close()
        loop.close()

        out = {
            "sessions": a.sessions,
            "open_seconds": round(opened_s, 2),
            "rss_mb_before": round(rss_before / 1024, 1),
            "rss_mb_idle": round(rss_idle / 1024, 1),
            "rss_mb_after_relay": round(rss_after / 1024, 1),
            "kib_per_idle_session": round((rss_idle - rss_before) / a.sessions, 2),
            "relay_msgs_per_s_alone": round(base_rate, 1),
            "relay_msgs_per_s_with_idle": round(busy_rate, 1),
        }
        print(json.dumps(out))
        print(f"{a.sessions} idle sessions: {out['rss_mb_idle']} MB RSS "
              f"({out['kib_per_idle_session']} KiB each); relay at c=1 "
              f"{out['relay_msgs_per_s_alone']} msg/s alone, "
              f"{out['relay_msgs_per_s_with_idle']} msg/s beside them", file=sys.stderr)
        if a.max_rss_mb is not None and rss_idle / 1024 > a.max_rss_mb:
            sys.exit(1)
    finally:
        gw.terminate()
        sink.terminate()
        gw.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
