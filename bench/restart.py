#!/usr/bin/env python3
"""Restart with a large queue, and the enqueue rate into a full queue (issue #20 item 3).

    bench/restart.py restart [--messages 100000] [--size 5120] [--reps 3] \
        [--bin new=target/release/ugem --bin old=/tmp/ugem-old] [--crash]
    bench/restart.py enqueue [--full 1000000] [--sample 20000] [--size 5120] [--reps 2]

restart: registers agency.example for 127.0.0.1 in a fresh data folder (a first, private
instance, as bench/relay-gateway.sh does), fills its queue with --messages outbound messages
due now (queue/examples/fill.rs, release build, at the store level), starts smtp-sink and then
`ugem serve` with `*` routed to the sink, and measures from the exec of `ugem serve`: the
first 220 greeting, the first message accepted (250 after DATA), the first message at the
sink, and the delivery rate over the next --window seconds; then SIGTERM (or, with --crash,
SIGKILL, so the next start also repairs the database files). Each rep starts every --bin in
turn on the same queue (interleaved A/B), topped up to --messages before every start (not
with --crash: the filler's open would do the repair; the queue then shrinks run by run).

enqueue: the enqueue rate (fill.rs, 50 concurrent writers, group commit, fsync) of --sample
messages into an empty queue and into one holding --full messages, interleaved, --reps times.

Python 3 standard library only; loopback only; needs smtp-sink (Postfix) and, for the sink's
-u, root. Temporary folders go under SPOOL_PARENT (/var/tmp) and are removed unless --keep.
Prints one line per measurement, with the load average beside it.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import json
import resource

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOKEN = "bench-admin-token"


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def log(*a):
    print(*a, flush=True)


def config(addr, sink, admin):
    return f"""[server]
hostname = "ugem.bench.localdomain"
data_dir = "var"
log_level = "info"
log_format = "json"

[smtp]
listen = ["{addr}"]
max_connections = 5000
max_connections_per_ip = 5000
min_free_space = "64MiB"

[delivery]
tls = "none"
max_connections = 200
max_connections_per_destination = 50

[delivery.routes]
"*" = "{sink}"

[admin]
listen = "{admin}"
token = "{TOKEN}"

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
"""


class Sink:
    """smtp-sink with its -c counters; count() is the messages received so far."""

    def __init__(self, addr, work):
        self.out = open(os.path.join(work, "sink.out"), "wb")
        self.proc = subprocess.Popen(
            ["smtp-sink", "-c", "-u", "nobody", addr, "1000"],
            stdout=self.out, stderr=subprocess.DEVNULL)
        self.path = self.out.name
        wait_port(addr, 10)

    def count(self):
        # The last complete "sess=A quit=B mesg=C\r" record.
        with open(self.path, "rb") as f:
            try:
                f.seek(-200, os.SEEK_END)
            except OSError:
                pass
            s = f.read().decode("ascii", "replace")
        recs = s.split("\r")[:-1]
        if not recs:
            return 0
        try:
            return int(recs[-1].rsplit("mesg=", 1)[1])
        except (IndexError, ValueError):
            return 0

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.out.close()


def wait_port(addr, secs):
    host, port = addr.rsplit(":", 1)
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            socket.create_connection((host, int(port)), 0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


def smtp_send(addr):
    """Waits for the greeting, then relays one message; returns (t_220, t_250)."""
    host, port = addr.rsplit(":", 1)
    while True:
        try:
            s = socket.create_connection((host, int(port)), 1)
            break
        except OSError:
            time.sleep(0.002)
    s.settimeout(30)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError("connection closed")
            if line[3:4] != b"-":
                return line

    greet = reply()
    t220 = time.monotonic()
    assert greet.startswith(b"220"), greet
    for cmd, want in ((b"EHLO bench.example", b"250"),
                      (b"MAIL FROM:<sender@agency.example>", b"250"),
                      (b"RCPT TO:<rcpt@external.example>", b"250"),
                      (b"DATA", b"354")):
        s.sendall(cmd + b"\r\n")
        r = reply()
        assert r.startswith(want), (cmd, r)
    s.sendall(b"Subject: restart probe\r\n\r\nprobe\r\n.\r\n")
    r = reply()
    t250 = time.monotonic()
    assert r.startswith(b"250"), r
    s.sendall(b"QUIT\r\n")
    s.close()
    return t220, t250


def log_field(path, message, field):
    try:
        with open(path) as f:
            for line in f:
                if message in line:
                    try:
                        return json.loads(line).get(field)
                    except ValueError:
                        return None
    except OSError:
        pass
    return None


def register(bin_, work, addr, admin):
    env = dict(os.environ, UGEM_SMTP__LISTEN="127.0.0.1:0")
    with open(os.path.join(work, "register.log"), "wb") as err:
        p = subprocess.Popen([bin_, "serve", "--config", os.path.join(work, "ugem.toml")],
                             env=env, stderr=err, cwd=work)
    try:
        for _ in range(300):
            r = subprocess.run([bin_, "--admin", f"http://{admin}", "domain", "list"],
                               env=dict(os.environ, UGEM_ADMIN_TOKEN=TOKEN),
                               capture_output=True)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        subprocess.run([bin_, "--admin", f"http://{admin}", "domain", "add", "agency.example",
                        "--server", "127.0.0.1", "--contact", "it@agency.example",
                        "--reason", "bench"],
                       env=dict(os.environ, UGEM_ADMIN_TOKEN=TOKEN), check=True,
                       capture_output=True)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait()


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def fill(fill_bin, qdir, n, size, conc=50):
    t = time.monotonic()
    out = subprocess.run([fill_bin, qdir, str(n), str(size), str(conc)], check=True,
                         capture_output=True, text=True).stdout
    return time.monotonic() - t, out


def fill_timed(fill_bin, qdir, n, size):
    """fill, plus the CPU time it used per message (user + system, in microseconds)."""
    cpu = cpu_children()
    took, out = fill(fill_bin, qdir, n, size)
    return took, out, (cpu_children() - cpu) / n * 1e6


def fill_rate(out):
    """The enqueue rate over fill's own lines ("queued N rate R msg/s", one per tenth): the
    time of the enqueues alone, without the process start, the open and the close."""
    done, secs = 0, 0.0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "queued":
            n = int(parts[1]) - done
            done = int(parts[1])
            secs += n / float(parts[3])
    return done / secs if secs else 0.0


def restart_cmd(a):
    bins = [b.split("=", 1) if "=" in b else [os.path.basename(b), b] for b in a.bin]
    parent = os.environ.get("SPOOL_PARENT", "/var/tmp")
    work = tempfile.mkdtemp(prefix="ugem-restart-", dir=parent)
    sink = None
    procs = []
    try:
        with open(os.path.join(work, "ugem.toml"), "w") as f:
            f.write(config(a.addr, a.sink, a.admin))
        register(bins[0][1], work, a.addr, a.admin)
        qdir = os.path.join(work, "var", "queue")
        took, _ = fill(a.fill, qdir, a.messages, a.size)
        log(f"filled {a.messages} x {a.size} B in {took:.1f} s "
            f"({a.messages / took:.0f} msg/s), load {load()}")
        sink = Sink(a.sink, work)
        left = a.messages
        for rep in range(a.reps):
            for name, bin_ in bins:
                # After a kill -9 the top-up would repair the files first, hiding the cost.
                if left < a.messages and not a.crash:
                    # Top the queue up to --messages again: every start sees the same queue.
                    fill(a.fill, qdir, a.messages - left, a.size)
                    left = a.messages
                errlog = os.path.join(work, f"{name}-{rep}.log")
                before = sink.count()
                ld = load()
                t0 = time.monotonic()
                with open(errlog, "wb") as err:
                    p = subprocess.Popen([bin_, "serve", "--config",
                                          os.path.join(work, "ugem.toml")],
                                         stderr=err, cwd=work)
                procs.append(p)
                first = {}

                def watch():
                    while p.poll() is None and "t" not in first:
                        if sink.count() > before:
                            first["t"] = time.monotonic()
                            return
                        time.sleep(0.002)

                w = threading.Thread(target=watch)
                w.start()
                t220, t250 = smtp_send(a.addr)
                w.join(timeout=a.timeout)
                if "t" not in first:
                    raise RuntimeError(f"{name}: nothing delivered in {a.timeout} s")
                tfirst = first["t"]
                c0 = sink.count()
                time.sleep(a.window)
                rate = (sink.count() - c0) / a.window
                ready_ms = log_field(errlog, '"ugem ready"', "startup_ms")
                opened_ms = log_field(errlog, '"queue opened"', "elapsed_ms")
                if a.crash:
                    p.send_signal(signal.SIGKILL)
                else:
                    p.send_signal(signal.SIGTERM)
                p.wait()
                delivered = sink.count() - before
                log(f"rep {rep} {name}: queued {left}, 220 after {t220 - t0:.2f} s, "
                    f"first 250 after {t250 - t0:.2f} s, first delivery after "
                    f"{tfirst - t0:.2f} s, then {rate:.0f} msg/s over {a.window:g} s "
                    f"(startup_ms {ready_ms}, queue open {opened_ms} ms"
                    f"{', killed -9' if a.crash else ''}), load {ld}")
                # The probe was queued; what the sink got left (a queue alarm to the
                # postmaster, queued at start, is not counted: "queued" is approximate).
                left = left + 1 - delivered
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if sink:
            sink.stop()
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def enqueue_cmd(a):
    parent = os.environ.get("SPOOL_PARENT", "/var/tmp")
    work = tempfile.mkdtemp(prefix="ugem-enqueue-", dir=parent)
    try:
        full = os.path.join(work, "full")
        took, _ = fill(a.fill, full, a.full, a.size)
        log(f"filled {a.full} x {a.size} B in {took:.0f} s ({a.full / took:.0f} msg/s), "
            f"load {load()}")
        queued = a.full
        for rep in range(a.reps):
            empty = os.path.join(work, "empty")
            shutil.rmtree(empty, ignore_errors=True)
            ld = load()
            took, out, cpu = fill_timed(a.fill, empty, a.sample, a.size)
            log(f"rep {rep}: {a.sample} into an empty queue: {fill_rate(out):.0f} msg/s "
                f"({a.sample / took:.0f} with open and close; CPU {cpu:.0f} us/msg), load {ld}")
            ld = load()
            took, out, cpu = fill_timed(a.fill, full, a.sample, a.size)
            log(f"rep {rep}: {a.sample} into a queue of {queued}: {fill_rate(out):.0f} msg/s "
                f"({a.sample / took:.0f} with open and close; CPU {cpu:.0f} us/msg), load {ld}")
            queued += a.sample
    finally:
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("restart")
    r.add_argument("--messages", type=int, default=100000)
    r.add_argument("--bin", action="append", default=[],
                   help="name=path of a ugem binary; repeat for an A/B")
    r.add_argument("--reps", type=int, default=3)
    r.add_argument("--window", type=float, default=3.0,
                   help="seconds over which the delivery rate is measured")
    r.add_argument("--timeout", type=float, default=300.0)
    r.add_argument("--crash", action="store_true", help="SIGKILL instead of SIGTERM")
    r.add_argument("--addr", default="127.0.0.1:2540")
    r.add_argument("--sink", default="127.0.0.1:2546")
    r.add_argument("--admin", default="127.0.0.1:8040")
    e = sub.add_parser("enqueue")
    e.add_argument("--full", type=int, default=1000000)
    e.add_argument("--sample", type=int, default=20000)
    e.add_argument("--reps", type=int, default=2)
    for p in (r, e):
        p.add_argument("--size", type=int, default=5120)
        p.add_argument("--fill", default=os.path.join(ROOT, "target/release/examples/fill"))
        p.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if a.cmd == "restart":
        if not a.bin:
            a.bin = ["ugem=" + os.path.join(ROOT, "target/release/ugem")]
        restart_cmd(a)
    else:
        enqueue_cmd(a)


if __name__ == "__main__":
    sys.exit(main())
