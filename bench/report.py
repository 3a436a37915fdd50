#!/usr/bin/env python3
"""The table bench/run.sh prints: per backend and scenario the median of the
rounds' rates, its ratio to the hello-world ceiling and (where the peer runs the
same scenario) to node-oidc-provider, all from the same run; latency, errors,
resident memory and CPU per operation of each process, the driver's included.
A row whose driver core was above 90 % busy in any round is marked DRIVER-BOUND.

Rows judged against the ceiling (JWKS, discovery) carry a run of the ceiling
measured next to each of their own runs (bench/run.sh alternates which goes
first): their "vs hello" columns are the medians of those paired ratios, not
ratios to the ceiling of the run's start, because this machine drifts by a
third within a minute.

`capacity` is what the server's own core could answer: 10^6 ÷ its CPU µs per
operation. Where the driver is bound (the hello-world and the JWKS on two cores
both cost the driver as much as the server) the measured rate is the driver's,
and the server's share of the ceiling is read from the capacities instead.
"""
import json
import statistics
import sys

path, workers, connections, seconds, rounds = sys.argv[1:6]
rows = [json.loads(line) for line in open(path)]
groups = {}
for r in rows:
    groups.setdefault((r["backend"], r["scenario"]), []).append(r)


def median_row(runs):
    """The run with the median rate (its latency and CPU belong to that run)."""
    ordered = sorted(runs, key=lambda r: r["ops_per_sec"])
    row = dict(ordered[len(ordered) // 2])
    row["all"] = [r["ops_per_sec"] for r in runs]
    row["errors"] = sum(r["errors"] for r in runs)
    row["driver_bound"] = any(r.get("driver_bound") for r in runs)
    row["rss_kib"] = max(r.get("rss_kib", 0) for r in runs)
    return row


def capacity(row):
    server = row.get("cpu_us_per_op", {}).get("server", 0)
    return 1e6 / server if server > 0 else 0


ceiling_row = median_row(groups[("ceiling", "hello")])
ceiling = ceiling_row["ops_per_sec"]
ceiling_capacity = capacity(ceiling_row)
peer = {s: median_row(g)["ops_per_sec"] for (b, s), g in groups.items() if b == "peer"}
print(f"workers={workers} connections={connections} seconds={seconds} rounds={rounds} (median shown)")
print(f"{'backend':9} {'scenario':24} {'ops/s':>9} {'vs hello':>8} {'vs peer':>7} {'capacity':>9} {'vs hello':>8} "
      f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'RSS MiB':>7}  CPU µs/op")
for (backend, scenario), runs in groups.items():
    rss = max(r.get("rss_kib", 0) for r in runs) / 1024
    if "ops_per_sec" not in runs[0]:
        print(f"{backend:9} {scenario:24} {'':>9} {'':>8} {'':>7} {'':>9} {'':>8} {'':>7} {'':>7} {'':>6} {rss:7.1f}")
        continue
    r = median_row(runs)
    vs_peer = f"{r['ops_per_sec'] / peer[scenario]:6.1f}x" if scenario in peer and backend != "peer" else ""
    flag = "  DRIVER-BOUND" if r["driver_bound"] else ""
    cap = capacity(r)
    paired = [x for x in runs if "ceiling" in x]
    if paired:
        shares = sorted(x["ops_per_sec"] / x["ceiling"]["ops_per_sec"] for x in paired)
        caps = sorted(capacity(x) / max(capacity(x["ceiling"]), 1e-9) for x in paired)
        share, cap_share = statistics.median(shares), statistics.median(caps)
        if any(x["ceiling"].get("driver_bound") for x in paired):
            flag += " (ceiling too)" if flag else "  CEILING DRIVER-BOUND"
    else:
        share, cap_share = r["ops_per_sec"] / ceiling, cap / ceiling_capacity
    mark = "*" if paired else " "
    print(f"{backend:9} {scenario:24} {r['ops_per_sec']:9.0f} {share:7.1%}{mark} {vs_peer:>7} "
          f"{cap:9.0f} {cap_share:7.1%}{mark} "
          f"{r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {r['errors']:6d} {rss:7.1f}  "
          + " ".join(f"{k} {v:.0f}" for k, v in r.get("cpu_us_per_op", {}).items()) + flag)
    if len(r["all"]) > 1:
        print(f"{'':34} rounds: " + " / ".join(f"{x:.0f}" for x in r["all"]))
    if paired:
        print(f"{'':34} * median of {len(paired)} pairs, each with its own ceiling run "
              f"({min(x['ceiling']['ops_per_sec'] for x in paired):.0f}–"
              f"{max(x['ceiling']['ops_per_sec'] for x in paired):.0f}/s): "
              f"share {shares[0]:.1%}–{shares[-1]:.1%}, capacity share {caps[0]:.1%}–{caps[-1]:.1%}")
