#!/usr/bin/env python3
"""Runs one wrk measurement and prints one JSON line: rate, latency, errors and
the CPU each process spent per operation, the driver's own included.

    measure.py --cpus 1 --seconds 10 --connections 16 --script bench/wrk/static.lua \
        --url http://127.0.0.1:8080 --cpu server=1234 --cpu db=name:postgres

A run whose driver kept its core above 90 % busy measured the driver, not the
server: the line then carries "driver_bound": true and bench/run.sh marks it.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def pids_named(name):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == name:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def ticks(pid):
    """User and system CPU ticks of a process, all its threads."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime: fields 14 and 15 of stat(5), 12 and 13 after the name.
        return int(fields[11]), int(fields[12])
    except (OSError, IndexError):
        return 0, 0


def snapshot(groups):
    return {name: {pid: ticks(pid) for pid in pids} for name, pids in groups.items()}


def spent(before, after, part=None):
    """CPU ticks between two snapshots: user + system, or one of them (0, 1)."""
    def of(t):
        return sum(t) if part is None else t[part]
    return sum(max(0, of(after[pid]) - of(before.get(pid, (0, 0)))) for pid in after)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cpus", required=True)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--script", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--cpu", action="append", default=[])
    a = p.parse_args()

    groups = {}
    for spec in a.cpu:
        name, _, target = spec.partition("=")
        groups[name] = pids_named(target[5:]) if target.startswith("name:") else [int(target)]
    before = snapshot(groups)
    started = time.monotonic()
    wrk = subprocess.Popen(
        ["taskset", "-c", a.cpus, "wrk", "-t1", f"-c{a.connections}", f"-d{a.seconds}s",
         "--timeout", "10s", "-s", a.script, a.url],
        stdout=subprocess.PIPE, text=True)
    # The driver's CPU: read just before it exits (after its last request).
    out, _ = wrk.communicate()
    elapsed = time.monotonic() - started
    after = snapshot(groups)
    line = next((l for l in out.splitlines() if l.startswith("BENCH_JSON ")), None)
    if wrk.returncode != 0 or line is None:
        sys.exit(f"wrk failed ({wrk.returncode}):\n{out}")
    r = json.loads(line[len("BENCH_JSON "):])
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    driver_s = child.ru_utime + child.ru_stime
    seconds = r["duration_us"] / 1e6
    ops = max(r["ops"], 1)
    cpu = {name: spent(before[name], after[name]) / TICK * 1e6 / ops for name in groups}
    # The server's time in the kernel: on loopback its `send` also delivers the
    # answer to the driver's socket and wakes the driver — in a virtual machine
    # an inter-processor interrupt that can cost more than the request's own
    # work (docs/PERFORMANCE.md, round 2 step 4).
    if "server" in groups:
        cpu["server-kernel"] = spent(before["server"], after["server"], 1) / TICK * 1e6 / ops
    cpu["driver"] = driver_s * 1e6 / ops
    print(json.dumps({
        "ops_per_sec": r["ops"] / seconds,
        "requests": r["requests"],
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "errors": r["errors"] + r["bad"],
        "cpu_us_per_op": cpu,
        "driver_core": driver_s / elapsed,
        "driver_bound": driver_s / elapsed > 0.9,
    }))


main()
