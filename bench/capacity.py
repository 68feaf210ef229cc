#!/usr/bin/env python3
"""How many of each server a deployment needs, from measured per-process costs.

    bench/capacity.py bench/results/<timestamp>            # docs/CAPACITY.md's table
    bench/capacity.py bench/results/<timestamp> --users 1e6 --per-minute 2

Reads a bench/run.py results directory (the medians over its runs, as
bench/summarize.py prints them) and computes, for a population of online users
each sending `--per-minute` messages a minute on average and `--peak` times that
at the busiest time:

- CPU: each server type's CPU time per message (its instances summed) times the
  message rate, over `--utilisation` of a core (headroom for bursts, failover and
  the noise a benchmark on a shared box cannot see); instances of the
  multi-threaded servers are `--cores` wide, a Redis primary is one core (its
  commands run on one thread).
- Connections: each online user holds one stream on a gateway; a gateway's
  memory per stream is the idle scenario's, and a gateway holds at most
  `--streams-per-gateway` (its SB_MAX_CONNECTIONS).
- Redis memory: bytes Redis grew per message during the run. With the history
  store (a `history` process in the results), what a message leaves in Redis is
  its retry record, kept for `--retry-ttl-hours`, so Redis holds that many hours of
  messages' records; without it, the message itself stays, and Redis grows by a
  day's messages every day.
- Stores that do not scale out yet are called out with the rate one instance
  carries: PostgreSQL is one primary (no shard map or Citus yet). Redis primaries
  are a Redis Cluster's, each one core.

The message mix is `--mix` (scenario=share, shares summing to 1): by default
all 1:1 (direct-5k, the moderate-load case, where cost per message is what most
deployments pay). Nothing here is measured at the sizes it prints: it
extrapolates per-message costs measured on one 2-core machine, linearly. What
does not scale linearly (one history store) is called out.
"""

import argparse
import json
import math
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

# Server type -> the process names bench/run.py gives its instances.
TYPES = {
    "gateway": ["gateway-0", "gateway-1"],
    "router": ["router-0", "router-1"],
    "presence": ["presence"],
    "nats": ["nats"],
    "redis": ["redis"],
    "history": ["history"],
}


# At least this many of each, whatever the load: availability.
MINIMUM = {"gateway": 2, "router": 2, "presence": 2, "nats": 3, "redis": 1, "history": 1}

# Stores that run as one primary today (docs/STORAGE.md has the plan).
SINGLE_PRIMARY = {"history": "PostgreSQL (one primary; no shard map or Citus yet)"}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def load(results):
    grouped = defaultdict(list)
    for path in sorted(results.glob("*.json")):
        if path.name == "summary.json":
            continue
        grouped[re.sub(r"-\d+$", "", path.stem)].append(json.loads(path.read_text()))
    return grouped


def scenario_costs(runs):
    """Median CPU µs per message of each server type, and Redis bytes per message."""
    reports = [run["reports"][0] for run in runs if run.get("reports")]
    costs = {}
    for kind, names in TYPES.items():
        per_run = []
        for report in reports:
            cpu = (report.get("extra") or {}).get("cpu", {})
            found = [cpu[n]["cpu_us_per_message"] for n in names if n in cpu]
            per_run.append(sum(found) if found else None)
        costs[kind] = median(per_run)
    grew, kept = [], []
    for run, report in zip(runs, reports):
        memory = (run.get("counts") or {}).get("redis_memory")
        sent = report["messages_per_second"] * report["seconds"]
        if memory and sent:
            grew.append((memory["after"] - memory["before"]) / sent)
            expired = memory.get("expired")
            if expired and expired["retries"]:
                # Growth per message, less one retry record's share (every
                # message of these runs carries a client message id).
                record = (expired["with_retries"] - expired["without_retries"]) / expired["retries"]
                kept.append((memory["after"] - memory["before"]) / sent - record)
    costs["redis_bytes"] = median(grew)
    costs["redis_bytes_kept"] = median(kept) if kept else None
    costs["p99_ms"] = median([r["latency_ms"]["p99"] for r in reports])
    costs["rate"] = median([r["messages_per_second"] for r in reports])
    return costs


def stream_kib(grouped):
    runs = grouped.get("idle", [])
    return median([(run["reports"][0].get("extra") or {}).get("kib_per_stream") for run in runs if run.get("reports")])


def parse_mix(text):
    mix = {}
    for part in text.split(","):
        name, share = part.split("=")
        mix[name.strip()] = float(share)
    if abs(sum(mix.values()) - 1.0) > 1e-6:
        sys.exit(f"--mix shares sum to {sum(mix.values())}, not 1")
    return mix


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--users", type=float, default=10e6, help="online users (default 10M)")
    parser.add_argument("--per-minute", type=float, default=1.0, help="messages per user per minute, on average")
    parser.add_argument("--peak", type=float, default=5.0, help="peak rate over the average")
    parser.add_argument("--mix", default="direct-5k=1", help="scenario=share,... (default: all 1:1)")
    parser.add_argument("--cores", type=int, default=8, help="cores of one instance of a multi-threaded server")
    parser.add_argument("--utilisation", type=float, default=0.6, help="share of a core to plan for")
    parser.add_argument("--streams-per-gateway", type=int, default=200_000)
    parser.add_argument("--retry-ttl-hours", type=float, default=10 / 60,
                        help="how long Redis keeps a 1:1 or group send's retry record (the router's "
                             "send_record_ttl; topic sends' are kept 24 h)")
    args = parser.parse_args()

    grouped = load(args.results)
    mix = parse_mix(args.mix)
    missing = [name for name in mix if name not in grouped]
    if missing:
        sys.exit(f"{args.results} has no runs of {', '.join(missing)} (bench/run.py {' '.join(missing)})")
    costs = {name: scenario_costs(grouped[name]) for name in mix}

    average = args.users * args.per_minute / 60
    peak = average * args.peak
    per_message = {kind: sum(share * (costs[name][kind] or 0) for name, share in mix.items()) for kind in TYPES}
    measured = {kind: any(costs[name][kind] is not None for name in mix) for kind in TYPES}

    print(f"{args.users:,.0f} online users, {args.per_minute:g} message/min each: "
          f"{average:,.0f} msgs/s on average, {peak:,.0f} at the {args.peak:g}x peak; "
          f"mix {args.mix}; from {args.results.name}\n")
    print("| server | CPU µs per message (measured) | cores at average | cores at peak | instances at peak | sized by |")
    print("|---|---|---|---|---|---|")
    rows, ceilings = {}, []
    for kind in TYPES:
        if not measured[kind]:
            continue
        us = per_message[kind]
        cores_avg = average * us / 1e6
        cores_peak = peak * us / 1e6
        if kind == "redis":
            # Commands run on one thread: a primary is one core.
            capacity = args.utilisation
            sized = f"one core per primary at {args.utilisation:.0%}"
        else:
            capacity = args.cores * args.utilisation
            sized = f"{args.cores} cores at {args.utilisation:.0%}"
        instances = max(math.ceil(cores_peak / capacity), MINIMUM[kind])
        rows[kind] = instances
        print(f"| {kind} | {fmt(us)} | {fmt(cores_avg, 1)} | {fmt(cores_peak, 1)} | {fmt(instances)} | {sized} |")
        if kind in SINGLE_PRIMARY and us:
            ceilings.append(f"{SINGLE_PRIMARY[kind]}: one instance carries {capacity * 1e6 / us:,.0f} msgs/s "
                            f"at {sized}; the peak needs {instances}")

    kib = stream_kib(grouped)
    if kib:
        by_streams = math.ceil(args.users / args.streams_per_gateway)
        memory_gib = args.users * kib / 1024 / 1024
        print(f"\nConnections: {args.users:,.0f} streams at {kib:.1f} KiB each = {memory_gib:,.0f} GiB of gateway "
              f"memory; at {args.streams_per_gateway:,} streams per gateway, {by_streams:,} gateways "
              f"({memory_gib / by_streams:,.1f} GiB each). Gateways needed: "
              f"{max(by_streams, rows.get('gateway', 0)):,} (the larger of CPU and streams).")
    redis_bytes = sum(share * (costs[name]["redis_bytes"] or 0) for name, share in mix.items())
    if any(costs[name]["redis_bytes"] is not None for name in mix):
        per_day = average * 86_400
        if measured["history"]:
            held = average * args.retry_ttl_hours * 3600
            print(f"\nRedis memory: {redis_bytes:,.0f} bytes per message measured (with the history store: its retry record and, until delivered, its outbox entry); "
                  f"held for {args.retry_ttl_hours:g} h, that is {held:,.0f} messages' records: "
                  f"{held * redis_bytes / 2**30:,.0f} GiB, steady (it does not grow with history).")
            if all(costs[name].get("redis_bytes_kept") is not None for name in mix):
                kept = sum(share * costs[name]["redis_bytes_kept"] for name, share in mix.items())
                print(f"Once the retry records have expired, {kept:,.1f} bytes per message stay in Redis.")
        else:
            print(f"\nRedis memory: {redis_bytes:,.0f} bytes per message measured; {per_day:,.0f} messages a day "
                  f"grow it by {per_day * redis_bytes / 2**30:,.0f} GiB a day, for ever (history is in Redis).")
    if ceilings:
        print("\nNot scaled out yet, so these bound the whole deployment today:\n")
        for line in ceilings:
            print(f"- {line}")
    print("\nMeasured: " + "; ".join(
        f"{name} at {fmt(costs[name]['rate'])} msgs/s, p99 {fmt(costs[name]['p99_ms'], 1)} ms" for name in mix))


if __name__ == "__main__":
    main()
