#!/usr/bin/env python3
"""hostile-data.py -- what unfinished DATA from many clients costs ugem in
memory, and how long ugem takes to stop with a client in DATA and a delivery
stuck on a slow server. Loopback only, bounded in sessions, bytes and time.

    bench/hostile-data.py rss       [--sessions 100] [--mib 9]
    bench/hostile-data.py shutdown

rss: starts ugem (UGEM_BIN, default target/release/ugem, else target/debug/ugem)
on a fresh data folder under /var/tmp, registers agency.example for
127.0.0.2 (so mail from 127.0.0.1 to it is inbound: no login, as from any
internet host), then opens SESSIONS sessions that each send MIB MiB of DATA
without the final dot. ugem's RSS (VmRSS of /proc/PID/status) is sampled
before, while every session holds its unfinished message, and after the
sessions end their DATA (each must get 250: nothing lost); VmHWM is the peak.

shutdown: a fake next hop on 127.0.0.1 that takes a message and never
answers the final dot holds one delivery; a second client is in the middle of
DATA. SIGTERM; prints when the client got its reply (and which), and when
ugem exited. With ugem's data folder kept, the script restarts ugem against a
fast fake next hop and prints when the stuck message arrived.

Everything started here is stopped by PID at exit; the temp folder is removed
unless KEEP=1. Exit status 0 when every check held (all 250 in rss; the
process stopped in shutdown).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TOKEN = "bench-admin-token-0123456789"
DEADLINE = time.monotonic() + float(os.environ.get("BENCH_TIMEOUT", "600"))


def check_deadline():
    if time.monotonic() > DEADLINE:
        raise SystemExit("hostile-data.py: BENCH_TIMEOUT reached")


def ugem_bin():
    b = os.environ.get("UGEM_BIN")
    if b:
        return b
    for kind in ("release", "debug"):
        p = os.path.join(REPO, "target", kind, "ugem")
        if os.path.exists(p):
            return p
    raise SystemExit("no ugem binary: cargo build --release (or set UGEM_BIN)")


def config(route=None, extra=""):
    routes = f'[delivery.routes]\n"*" = "{route}"\n' if route else ""
    return f"""[server]
hostname = "ugem.bench.localdomain"
data_dir = "var"
log_format = "json"
log_level = "info"

[smtp]
listen = ["127.0.0.1:0"]
max_connections = 1000
max_connections_per_ip = 1000
min_free_space = "64MiB"
verify_recipients = false

[delivery]
tls = "none"
min_backoff = "1h"
max_backoff = "2h"
{routes}
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[governor]
domain_messages_per_hour = 1000000000
domain_recipients_per_hour = 1000000000
sender_messages_per_hour = 1000000000
sender_recipients_per_hour = 1000000000
sender_messages_per_minute = 1000000000
connections_per_minute = 1000000000
volume_floor = 1000000000
domain_volume_floor = 1000000000
new_recipients_burst = 1000000000
{extra}
"""


class Ugem:
    def __init__(self, workdir, text):
        self.dir = workdir
        self.conf = os.path.join(workdir, "ugem.toml")
        with open(self.conf, "w") as f:
            f.write(text)
        self.proc = None
        self.log = []

    def start(self):
        self.proc = subprocess.Popen(
            [ugem_bin(), "serve", "--config", self.conf],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        ready = threading.Event()

        def reader():
            for line in self.proc.stderr:
                self.log.append(line)
                try:
                    v = json.loads(line)
                except ValueError:
                    continue
                if v.get("message") == "ugem ready":
                    self.smtp = v["smtp"].split(",")[0]
                    self.admin = v["admin"]
                    ready.set()
        threading.Thread(target=reader, daemon=True).start()
        if not ready.wait(60):
            self.stop()
            raise SystemExit("ugem did not start:\n" + "".join(self.log[-20:]))
        return self

    def cli(self, *args):
        env = dict(os.environ, UGEM_ADMIN_TOKEN=TOKEN)
        subprocess.run([ugem_bin(), "--admin", f"http://{self.admin}", *args],
                       env=env, check=True, stdout=subprocess.DEVNULL, timeout=60)

    def status(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def rss_mb(self):
        return self.status("VmRSS") / 1e6

    def hwm_mb(self):
        return self.status("VmHWM") / 1e6

    def terminate(self, timeout=120):
        """SIGTERM; seconds until the process exited (None if it did not)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return None
        return time.monotonic() - t0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with open(os.path.join(self.dir, "ugem.log"), "a") as f:
            f.writelines(self.log)


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


class Client:
    def __init__(self, where, timeout=60):
        self.s = socket.create_connection(addr(where), timeout=timeout)
        self.buf = b""

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                check_deadline()
                chunk = self.s.recv(4096)
                if not chunk:
                    return 0, " ".join(lines)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode("latin-1")
            lines.append(text[4:])
            if text[3:4] != "-":
                return int(text[:3]), " ".join(lines)

    def cmd(self, line, want):
        self.s.sendall(line.encode() + b"\r\n")
        code, text = self.reply()
        if code != want:
            raise SystemExit(f"{line!r} -> {code} {text}")
        return text

    def start_data(self, sender, rcpt):
        code, text = self.reply()
        assert code == 220, text
        self.cmd("EHLO client.bench.example", 250)
        self.cmd(f"MAIL FROM:<{sender}>", 250)
        self.cmd(f"RCPT TO:<{rcpt}>", 250)
        self.cmd("DATA", 354)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def body_chunk(n):
    line = b"x" * 76 + b"\r\n"
    return line * (n // len(line))


def run_rss(args, work):
    gw = Ugem(work, config()).start()
    try:
        gw.cli("domain", "add", "agency.example", "--server", "127.0.0.2",
               "--contact", "IT Desk <it@contact.example>", "--reason", "bench")
        time.sleep(1)
        before = gw.rss_mb()
        clients = []
        for i in range(args.sessions):
            c = Client(gw.smtp)
            c.start_data(f"sender{i}@outside.example", f"user{i}@agency.example")
            c.s.sendall(f"Subject: hostile {i}\r\n\r\n".encode())
            clients.append(c)
        chunk = body_chunk(256 << 10)
        total = args.mib << 20
        sent = 0
        t0 = time.monotonic()
        while sent < total:
            check_deadline()
            for c in clients:
                c.s.sendall(chunk)
            sent += len(chunk)
        feed_s = time.monotonic() - t0
        time.sleep(2)
        held = gw.rss_mb()
        peak_held = gw.hwm_mb()
        ok = 0
        t0 = time.monotonic()
        for c in clients:
            c.s.sendall(b".\r\n")
        for c in clients:
            code, text = c.reply()
            if code == 250:
                ok += 1
            else:
                print(f"  DATA end: {code} {text}", file=sys.stderr)
            c.cmd("QUIT", 221)
            c.close()
        finish_s = time.monotonic() - t0
        time.sleep(2)
        after = gw.rss_mb()
        peak = gw.hwm_mb()
        spool = os.path.join(work, "var", "spool")
        left = len(os.listdir(spool)) if os.path.isdir(spool) else 0
        print(f"ugem: {ugem_bin()}")
        print(f"sessions={args.sessions} data={args.mib}MiB each "
              f"({args.sessions * args.mib} MiB) fed in {feed_s:.1f}s, ended in {finish_s:.1f}s")
        print(f"{'RSS MB':>24} {'value':>8}")
        print(f"{'idle before':>24} {before:8.0f}")
        print(f"{'all DATA unfinished':>24} {held:8.0f}")
        print(f"{'peak while unfinished':>24} {peak_held:8.0f}")
        print(f"{'after the 250s':>24} {after:8.0f}")
        print(f"{'peak overall':>24} {peak:8.0f}")
        print(f"accepted (250): {ok}/{args.sessions}; spool files left: {left}")
        secs = gw.terminate()
        print(f"SIGTERM to exit: {secs:.1f}s" if secs is not None else "did not stop")
        return ok == args.sessions
    finally:
        gw.stop()


class StuckMx:
    """A next hop that takes the message and never answers the final dot."""

    def __init__(self, stuck=True):
        self.l = socket.socket()
        self.l.bind(("127.0.0.1", 0))
        self.l.listen(16)
        self.l.settimeout(1)
        self.stuck = stuck
        self.got = []
        self.running = True
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()

    def where(self):
        return "127.0.0.1:%d" % self.l.getsockname()[1]

    def serve(self):
        while self.running:
            try:
                s, _ = self.l.accept()
            except OSError:
                continue
            self.conns.append(s)
            threading.Thread(target=self.session, args=(s,), daemon=True).start()

    def session(self, s):
        s.settimeout(120)
        f = s.makefile("rb")
        try:
            s.sendall(b"220 stuck.mx ESMTP\r\n")
            for line in f:
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    s.sendall(b"250 stuck.mx\r\n")
                elif verb == b"DATA":
                    s.sendall(b"354 go\r\n")
                    data = b""
                    for dl in f:
                        if dl == b".\r\n":
                            break
                        data += dl
                    if self.stuck:
                        time.sleep(110)
                        return
                    self.got.append((time.monotonic(), data))
                    s.sendall(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    s.sendall(b"221 bye\r\n")
                    return
                else:
                    s.sendall(b"250 ok\r\n")
        except OSError:
            pass

    def close(self):
        self.running = False
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass
        self.l.close()


def run_shutdown(args, work):
    mx = StuckMx()
    gw = Ugem(work, config(route=mx.where())).start()
    ok = True
    try:
        gw.cli("domain", "add", "agency.example", "--server", "127.0.0.1",
               "--contact", "IT Desk <it@contact.example>", "--reason", "bench")
        c = Client(gw.smtp)
        c.start_data("clerk@agency.example", "citizen@external.example")
        c.s.sendall(b"Subject: stuck\r\n\r\nheld by a slow next hop\r\n.\r\n")
        code, text = c.reply()
        assert code == 250, text
        c.cmd("QUIT", 221)
        # Wait until the delivery hangs on the final dot.
        for _ in range(300):
            if any("queued" in l for l in gw.log) and mx.conns:
                break
            time.sleep(0.1)
        time.sleep(1)
        mid = Client(gw.smtp, timeout=150)
        mid.start_data("clerk@agency.example", "other@external.example")
        mid.s.sendall(b"Subject: cut\r\n\r\nhalf a message\r\n")
        got = {}

        def wait_reply():
            got["reply"] = mid.reply()
            got["at"] = time.monotonic()
        t = threading.Thread(target=wait_reply, daemon=True)
        t.start()
        t0 = time.monotonic()
        secs = gw.terminate(timeout=150)
        t.join(5)
        print(f"ugem: {ugem_bin()}")
        if "at" in got:
            code, text = got["reply"]
            print(f"client in DATA: {code} {text!r} after {got['at'] - t0:.1f}s")
        else:
            print("client in DATA: no reply")
        print(f"SIGTERM to exit: {secs:.1f}s" if secs is not None else "did not stop in 150s")
        ok = secs is not None
        old = mx.where()
        mx.close()
        fast = StuckMx(stuck=False)
        with open(gw.conf) as f:
            text = f.read().replace(old, fast.where())
        with open(gw.conf, "w") as f:
            f.write(text)
        t0 = time.monotonic()
        gw.log = []
        gw.start()
        for _ in range(600):
            if fast.got:
                break
            time.sleep(0.1)
        if fast.got:
            print(f"after restart, the stuck message arrived in {fast.got[0][0] - t0:.1f}s")
        else:
            print("after restart, the stuck message did not arrive within 60s")
        fast.close()
        gw.terminate()
        return ok
    finally:
        gw.stop()
        mx.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["rss", "shutdown"])
    p.add_argument("--sessions", type=int, default=100)
    p.add_argument("--mib", type=int, default=9)
    args = p.parse_args()
    if not (1 <= args.sessions <= 1000 and 1 <= args.mib <= 24):
        raise SystemExit("sessions 1-1000, mib 1-24")
    parent = os.environ.get("SPOOL_PARENT", "/var/tmp")
    work = tempfile.mkdtemp(prefix="ugem-hostile.", dir=parent)
    try:
        ok = run_rss(args, work) if args.mode == "rss" else run_shutdown(args, work)
    finally:
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
