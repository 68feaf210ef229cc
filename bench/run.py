#!/usr/bin/env python3
"""Runs Switchboard's benchmarks and prints a table of medians.

Starts its own nats-server and redis-server (AOF on, appendfsync everysec,
noeviction) and the release `switchboard` binary as presence, 2 routers and
2 gateways, then runs the load generator's scenarios, each several times,
sampling CPU time and resident memory of every process around each run.
Results go to bench/results/<timestamp>/ as JSON, and a Markdown table of
medians is printed (BENCHMARKS.md quotes them).

    bench/run.py                 # every scenario, 3 runs each
    bench/run.py direct topic    # some of them
    bench/run.py --runs 5 group-100

Nothing here is a pass/fail check: CI runs `switchboard-loadgen smoke`
(correctness only) through the test suite instead.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-that-is-long-enough-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def program(name):
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)
    if not found:
        sys.exit(f"{name} is not installed")
    return found


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Cluster:
    def __init__(self, target, gateways=2, routers=2):
        self.dir = Path(tempfile.mkdtemp(prefix="sb-bench-"))
        self.procs = {}
        self.nats_port, self.redis_port = free_port(), free_port()
        self.start("nats", [program("nats-server"), "-a", "127.0.0.1", "-p", str(self.nats_port)], self.nats_port)
        self.start("redis", [program("redis-server"), "--port", str(self.redis_port), "--bind", "127.0.0.1",
                             "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "everysec",
                             "--save", "", "--maxmemory-policy", "noeviction"], self.redis_port)
        switchboard = str(target / "release" / "switchboard")
        nats, redis = f"nats://127.0.0.1:{self.nats_port}", f"redis://127.0.0.1:{self.redis_port}"
        common = ["--log-format", "text"]
        port = free_port()
        self.start("presence", [switchboard, "presence", "--nats-url", nats, "--redis-url", redis,
                                "--health-listen", f"127.0.0.1:{port}"] + common, port)
        for i in range(routers):
            port = free_port()
            self.start(f"router-{i}", [switchboard, "router", "--nats-url", nats, "--redis-url", redis,
                                       "--token-secret", SECRET, "--health-listen", f"127.0.0.1:{port}",
                                       "--password-hashing", "fast-insecure"] + common, port)
        self.gateway_urls = []
        for i in range(gateways):
            port = free_port()
            self.start(f"gateway-{i}", [switchboard, "gateway", "--listen", f"127.0.0.1:{port}",
                                        "--nats-url", nats, "--token-secret", SECRET, "--gateway-id", f"gw{i}",
                                        "--send-rate", "1000000", "--send-burst", "1000000",
                                        "--max-connections", "19000", "--max-connections-per-user", "64"]
                       + common, port)
            self.gateway_urls.append(f"http://127.0.0.1:{port}")
        time.sleep(1.0)  # presence registration of the gateways

    def start(self, name, argv, port):
        log = open(self.dir / f"{name}.log", "ab")
        env = dict(os.environ, RUST_LOG="warn")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        wait_port(port)

    def sample(self):
        return {name: {"cpu_s": cpu_seconds(p.pid), "rss_mib": rss_mib(p.pid)}
                for name, p in self.procs.items() if p.poll() is None}

    def stop(self):
        for p in self.procs.values():
            p.send_signal(signal.SIGKILL)
        for p in self.procs.values():
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# name -> (loadgen arguments, gateways to use: "both" or "first")
SCENARIOS = {
    "transport": (["transport", "--duration", "5"], "both"),
    "idle": (["idle", "--clients", "15000", "--ramp", "1000", "--hold", "5"], "first"),
    "direct-10k": (["direct", "--pairs", "1000", "--rate", "10000", "--duration", "15"], "both"),
    "direct-ceiling": (["direct", "--pairs", "1000", "--rate", "{rate}", "--duration", "10"], "both"),
    "group-10": (["group", "--groups", "100", "--members", "10", "--rate", "2000", "--duration", "10"], "both"),
    "group-100": (["group", "--groups", "10", "--members", "100", "--rate", "1000", "--duration", "10"], "both"),
    "group-10000": (["group", "--groups", "1", "--members", "10000", "--rate", "20", "--duration", "10"], "both"),
    "group-100-of-100": (["group", "--groups", "1", "--members", "100", "--rate", "200", "--duration", "10"], "both"),
    "group-100-of-100000": (["group", "--groups", "1", "--members", "100000", "--online", "100", "--rate", "200",
                             "--duration", "10"], "both"),
    "topic-200": (["topic", "--contacts", "200", "--rate", "500", "--duration", "10"], "both"),
    "storm": (["storm", "--clients", "10000"], "both"),
}


def run_once(target, name, args, where, rate=None):
    cluster = Cluster(target)
    try:
        gateways = cluster.gateway_urls if where == "both" else cluster.gateway_urls[:1]
        argv = [str(target / "release" / "switchboard-loadgen"), "--json", "--gateways", ",".join(gateways),
                "--sources", "8"] + [a.replace("{rate}", str(rate)) for a in args]
        if name == "idle":
            argv += ["--gateway-pid", str(cluster.procs["gateway-0"].pid)]
        if name == "transport":
            argv += ["--nats", f"nats://127.0.0.1:{cluster.nats_port}",
                     "--redis", f"redis://127.0.0.1:{cluster.redis_port}"]
        before = cluster.sample()
        started = time.time()
        out = subprocess.run(argv, capture_output=True, text=True)
        wall = time.time() - started
        after = cluster.sample()
        reports = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode != 0 and not reports:
            raise RuntimeError(f"{name}: {out.stderr.strip()}")
        processes = {n: {"cpu_s": round(after[n]["cpu_s"] - before[n]["cpu_s"], 2),
                         "rss_mib": round(after[n]["rss_mib"], 1)} for n in after if n in before}
        return {"scenario": name, "rate": rate, "wall_s": round(wall, 1), "reports": reports,
                "processes": processes, "clean": out.returncode == 0}
    finally:
        cluster.stop()


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ceiling-rates", default="20000,30000,40000,50000")
    args = parser.parse_args()
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "switchboard-server", "-p", "switchboard-loadgen"],
                   cwd=ROOT, check=True)
    out_dir = ROOT / "bench" / "results" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.scenarios:
        loadgen_args, where = SCENARIOS[name]
        rates = [int(r) for r in args.ceiling_rates.split(",")] if name == "direct-ceiling" else [None]
        for rate in rates:
            runs = []
            for i in range(args.runs):
                result = run_once(target, name, loadgen_args, where, rate)
                runs.append(result)
                (out_dir / f"{name}{'-' + str(rate) if rate else ''}-{i}.json").write_text(json.dumps(result, indent=1))
                print(f"{name} {rate or ''} run {i}: {json.dumps(result['reports'])[:300]}", file=sys.stderr)
            for k in range(len(runs[0]["reports"])):
                reps = [r["reports"][k] for r in runs if len(r["reports"]) > k]
                rows.append({
                    "scenario": reps[0]["scenario"] + (f" @{rate}/s" if rate else ""),
                    "case": name,
                    "msgs_s": median([r["messages_per_second"] for r in reps]),
                    "deliveries_s": median([r["deliveries_per_second"] for r in reps]),
                    "p50_ms": median([r["latency_ms"]["p50"] for r in reps]),
                    "p99_ms": median([r["latency_ms"]["p99"] for r in reps]),
                    "max_ms": median([r["latency_ms"]["max"] for r in reps]),
                    "problems": sum(len(r["problems"]) + r["missing"] + r["gaps"] + r["duplicates"] for r in reps),
                    "extra": reps[0].get("extra"),
                    "cpu_s": {p: median([r["processes"].get(p, {}).get("cpu_s") for r in runs])
                              for p in runs[0]["processes"]},
                    "rss_mib": {p: median([r["processes"].get(p, {}).get("rss_mib") for r in runs])
                                for p in runs[0]["processes"]},
                })
    (out_dir / "summary.json").write_text(json.dumps(rows, indent=1))
    print("| case | scenario | msgs/s | deliveries/s | p50 ms | p99 ms | max ms | problems |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['scenario']} | {r['msgs_s']} | {r['deliveries_s']} | {r['p50_ms']} | "
              f"{r['p99_ms']} | {r['max_ms']} | {r['problems']} |")
    print(f"\nresults: {out_dir}")


if __name__ == "__main__":
    main()
