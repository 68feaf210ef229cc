#!/usr/bin/env python3
"""Tables of medians from a bench/run.py results directory (what BENCHMARKS.md quotes).

    bench/summarize.py bench/results/20261121-101500

For every scenario: the sum over its runs of broken deliveries (acked but never
delivered, delivered twice, or skipped without a word), of holes the server
announced with a Gap event, and of sends never acked (refused or not sent because
the load generator fell behind); the median over its runs of throughput and latency, of the CPU
time each process spent per message over the measured window (from the load
generator's --watch), of the Redis commands and NATS messages per message, and of
each process's resident memory at the end of the run. A run on a Redis Cluster
(bench/run.py --redis-cluster N) counts its primaries together as "redis" and
adds a table of each primary's share of the Redis commands.
"""
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

PROCESSES = ["gateway-0", "gateway-1", "router-0", "router-1", "presence", "nats", "redis", "history", "loadgen"]


def merged(per_process):
    """A run's per-process figures with Redis Cluster primaries (redis-0,
    redis-1, ...) summed as "redis"."""
    out = {}
    for name, figures in per_process.items():
        key = "redis" if re.fullmatch(r"redis-\d+", name) else name
        if key in out:
            out[key] = {k: out[key].get(k, 0) + v for k, v in figures.items() if isinstance(v, (int, float))}
        else:
            out[key] = dict(figures)
    return out


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "–"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def load(results):
    """Runs grouped by label without the run index: {"direct-5k": [run, run, run]}."""
    grouped = defaultdict(list)
    for path in sorted(results.glob("*.json")):
        if path.name == "summary.json":
            continue
        label = re.sub(r"-\d+$", "", path.stem)
        grouped[label].append(json.loads(path.read_text()))
    return grouped


def main():
    results = Path(sys.argv[1])
    grouped = load(results)
    throughput, cpu, memory, balance = [], [], [], []
    for label, runs in grouped.items():
        for k, rep in enumerate(runs[0]["reports"]):
            reps = [r["reports"][k] for r in runs if len(r["reports"]) > k]
            broken = sum(r["missing"] + r["gaps"] + r["duplicates"] for r in reps)
            announced = sum(r.get("gap_notices", 0) for r in reps)
            unacked = sum((r["sends"] or {}).get("errors", 0) + (r["sends"] or {}).get("dropped", 0) for r in reps)
            throughput.append(
                f"| {label} | {rep['scenario']} | {len(reps)} | {fmt(median([r['messages_per_second'] for r in reps]))} | "
                f"{fmt(median([r['deliveries_per_second'] for r in reps]))} | "
                f"{fmt(median([r['latency_ms']['p50'] for r in reps]), 2)} | "
                f"{fmt(median([r['latency_ms']['p99'] for r in reps]), 2)} | {broken} | {announced} | {unacked} |")
            per_process = {p: median([merged((r.get("extra") or {}).get("cpu", {})).get(p, {})
                                      .get("cpu_us_per_message") for r in reps]) for p in PROCESSES}
            if any(v is not None for v in per_process.values()):
                totals = [sum(c["cpu_us_per_message"] for c in merged((r.get("extra") or {}).get("cpu", {})).values())
                          for r in reps if (r.get("extra") or {}).get("cpu")]
                sent = [r["messages_per_second"] * r["seconds"] for r in reps]
                redis = [sum(run["counts"]["redis"].values()) / s for run, s in zip(runs, sent)
                         if run.get("counts") and s]
                nats = [run["counts"]["nats"]["in_msgs"] / s for run, s in zip(runs, sent) if run.get("counts") and s]
                cpu.append(f"| {label} | " + " | ".join(fmt(per_process[p]) for p in PROCESSES) +
                           f" | {fmt(median(totals))} | {fmt(median(redis), 1)} | {fmt(median(nats), 1)} |")
        memory.append(f"| {label} | " + " | ".join(
            fmt(median([merged(r["processes"]).get(p, {}).get("rss_mib") for r in runs]), 1)
            for p in PROCESSES[:-1]) + " |")
        shares = []
        for run in runs:
            nodes = (run.get("counts") or {}).get("redis_nodes") or {}
            total = sum(nodes.values())
            if len(nodes) > 1 and total:
                shares.append(sorted(100 * n / total for n in nodes.values()))
        if shares:
            columns = zip(*shares)
            balance.append(f"| {label} | {len(shares)} | "
                           + " | ".join(f"{median(list(c)):.1f} %" for c in columns) + " |")
    print("| case | scenario | runs | msgs/s | deliveries/s | p50 ms | p99 ms | lost, dup, silent gap | announced gap | not acked |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(throughput))
    print("\nCPU µs per message over the measured window (medians):\n")
    print("| case | " + " | ".join(PROCESSES) + " | total | Redis cmds/msg | NATS msgs/msg |")
    print("|---|" + "---|" * (len(PROCESSES) + 3))
    print("\n".join(cpu))
    print("\nResident memory at the end of the run, MiB (medians):\n")
    print("| case | " + " | ".join(PROCESSES[:-1]) + " |")
    print("|---|" + "---|" * (len(PROCESSES) - 1))
    print("\n".join(memory))
    if balance:
        print("\nRedis Cluster: each primary's share of the window's commands, smallest first (medians):\n")
        widest = max(row.count("|") - 3 for row in balance)
        print("| case | runs | " + " | ".join(f"primary {i + 1}" for i in range(widest)) + " |")
        print("|---|---|" + "---|" * widest)
        print("\n".join(balance))


if __name__ == "__main__":
    main()
