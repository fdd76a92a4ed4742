#!/usr/bin/env python3
"""The fastest any relay that syncs once per message can go at one connection at a time.

At c=1 the client waits for the reply to the final dot before its next message, so a relay
that makes each message durable before that reply takes at least what smtp-sink takes for the
same SMTP exchange (the harness ceiling: smtp-source straight into smtp-sink, measured by
relay-bench.sh in the same run) plus one synchronous write of the message. This script
measures that write the way ugem's acceptance journal makes it: a record of RECORD bytes
appended to a preallocated file, then fdatasync, twice: back to back, and paced one per
ceiling interval as a relay at c=1 makes them (in a VM the paced ones cost more: the vCPU
idles between them and wakes on the completion). It then prints, for each,

    bound = 1 / (1 / ceiling + sync_p50)

which is generous to the relay: it charges nothing for parsing, the queue, the wake-ups, or
the relaying to the sink that shares the same CPUs while the next message comes in.

Usage: c1-bound.py --ceiling MSGS_PER_S [--postfix MSGS_PER_S] [--record BYTES]
                   [--dir /var/tmp] [--n 2000]
"""
import argparse
import os
import tempfile
import time


def sync_p50(directory, record, n, interval=0.0):
    """p50 and p90 seconds of one append of `record` bytes + fdatasync, file preallocated;
    one sync every `interval` seconds at most."""
    size = 64 << 20
    fd, path = tempfile.mkstemp(dir=directory, prefix="c1-bound.")
    try:
        zeros = b"\0" * (1 << 20)
        for off in range(0, size, len(zeros)):
            os.pwrite(fd, zeros, off)
        os.fsync(fd)
        buf = b"r" * record
        lat = []
        off = 0
        for _ in range(n):
            if off + record > size:
                off = 0
            t = time.perf_counter()
            os.pwrite(fd, buf, off)
            os.fdatasync(fd)
            took = time.perf_counter() - t
            lat.append(took)
            off += record
            if interval > took:
                time.sleep(interval - took)
        lat.sort()
        return lat[len(lat) // 2], lat[len(lat) * 9 // 10]
    finally:
        os.close(fd)
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ceiling", type=float, required=True,
                    help="smtp-source -> smtp-sink msg/s at c=1, same run")
    ap.add_argument("--postfix", type=float, help="Postfix msg/s at c=1, same run")
    ap.add_argument("--record", type=int, default=5120 + 600,
                    help="bytes synced per message (body + envelope)")
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--n", type=int, default=2000)
    a = ap.parse_args()
    print(f"ceiling {a.ceiling:.0f} msg/s = {1e3 / a.ceiling:.3f} ms per message")
    if a.postfix:
        print(f"3x Postfix = {3 * a.postfix:.0f} msg/s, 2x = {2 * a.postfix:.0f}")
    for how, interval in (("back to back", 0.0), ("paced", 1.0 / a.ceiling)):
        p50, p90 = sync_p50(a.dir, a.record, a.n, interval)
        bound = 1.0 / (1.0 / a.ceiling + p50)
        line = (f"{how:12s} append {a.record} B + fdatasync on {a.dir}: p50 {p50 * 1e3:.3f} ms, "
                f"p90 {p90 * 1e3:.3f} ms; bound {bound:.0f} msg/s")
        if a.postfix:
            line += f" = {bound / a.postfix:.2f}x Postfix"
        print(line)


if __name__ == "__main__":
    main()
