#!/usr/bin/env python3
"""Runs Switchboard's benchmarks and prints a table of medians.

Starts its own nats-server and redis-server (AOF on, appendfsync everysec,
noeviction) and the release `switchboard` binary as presence, 2 routers and
2 gateways, then runs the load generator's scenarios, each several times,
sampling CPU time and resident memory of every process around each run.
Results go to bench/results/<timestamp>/ as JSON, and bench/summarize.py
prints Markdown tables of their medians (BENCHMARKS.md quotes them).

    bench/run.py                 # every scenario, 3 runs each
    bench/run.py direct topic    # some of them
    bench/run.py --runs 5 group-100
    bench/run.py --runs 1 --profile direct-10k   # + perf profiles of each server
    bench/run.py --redis-cluster 3 direct-5k group-10  # hot state on a 3-primary Redis Cluster

With --redis-cluster N, Redis is a cluster of N primaries (no replicas: the
figure is each primary's share of the work) made with `redis-cli --cluster
create`; its CPU is the sum over the primaries, and bench/summarize.py adds
a table of each primary's share of the commands.

With --profile, `perf record` samples every switchboard process during the
run (software cpu-clock event: this machine has no hardware counters); the
hottest functions go to <name>.perf.txt and, when inferno is installed
(`cargo install inferno`), a flamegraph to <name>.svg.

Nothing here is a pass/fail check: CI runs `switchboard-loadgen smoke`
(correctness only) through the test suite instead.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from storage import Postgres, children, free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-that-is-long-enough-0123456789"


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


def history_cpu_seconds(postmaster):
    """CPU of the history store: every backend now, plus those already reaped."""
    fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return reaped + sum(cpu_seconds(pid) for pid in children(postmaster) if Path(f"/proc/{pid}").exists())


# With --pg-stats: what each statement costs the history store, over the
# measured window (pg_stat_statements, which ships with PostgreSQL).
PG_STATS_SETTINGS = ["shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all"]
PG_STATS_QUERY = """SELECT calls, round(total_exec_time) AS ms, rows, wal_bytes,
  left(regexp_replace(query, '\\s+', ' ', 'g'), 100) AS statement
FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15"""

REDIS_SETTINGS = ["--bind", "127.0.0.1", "--appendonly", "yes", "--appendfsync", "everysec",
                  "--save", "", "--maxmemory-policy", "noeviction"]


class Cluster:
    def __init__(self, target, gateways=2, routers=2, password_hashing="fast-insecure", call_limits=False,
                 redis_primaries=0, pg_stats=False):
        self.dir = Path(tempfile.mkdtemp(prefix="sb-bench-"))
        self.procs = {}
        # Messages in PostgreSQL (durable commits), as in production.
        self.history = Postgres(PG_STATS_SETTINGS if pg_stats else ())
        self.nats_port = free_port()
        self.nats_monitor = free_port()
        self.start("nats", [program("nats-server"), "-a", "127.0.0.1", "-p", str(self.nats_port),
                            "-m", str(self.nats_monitor)], self.nats_port)
        if redis_primaries:
            self.redis_ports = [free_port() for _ in range(redis_primaries)]
            for i, port in enumerate(self.redis_ports):
                node_dir = self.dir / f"redis-{i}"
                node_dir.mkdir()
                self.start(f"redis-{i}", [program("redis-server"), "--port", str(port), "--dir", str(node_dir),
                                          "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                          "--cluster-port", str(free_port())]
                           + REDIS_SETTINGS, port)
            subprocess.run([program("redis-cli"), "--cluster", "create"]
                           + [f"127.0.0.1:{p}" for p in self.redis_ports]
                           + ["--cluster-replicas", "0", "--cluster-yes"], capture_output=True, check=True)
            deadline = time.time() + 30
            while not all("cluster_state:ok" in self.cli(p, "cluster", "info") for p in self.redis_ports):
                if time.time() > deadline:
                    raise RuntimeError("the Redis Cluster did not come up")
                time.sleep(0.1)
        else:
            self.redis_ports = [free_port()]
            self.start("redis", [program("redis-server"), "--port", str(self.redis_ports[0]),
                                 "--dir", str(self.dir)] + REDIS_SETTINGS, self.redis_ports[0])
        self.redis_port = self.redis_ports[0]
        switchboard = str(target / "release" / "switchboard")
        nats = f"nats://127.0.0.1:{self.nats_port}"
        redis = ",".join(f"redis://127.0.0.1:{p}" for p in self.redis_ports)
        common = ["--log-format", "text"]
        port = free_port()
        self.start("presence", [switchboard, "presence", "--nats-url", nats, "--redis-url", redis,
                                "--health-listen", f"127.0.0.1:{port}"] + common, port)
        for i in range(routers):
            port = free_port()
            history_url = ["--history-url", self.history.url]
            self.start(f"router-{i}", [switchboard, "router", "--nats-url", nats, "--redis-url", redis,
                                       "--token-secret", SECRET, "--health-listen", f"127.0.0.1:{port}",
                                       "--password-hashing", password_hashing] + history_url + common, port)
        self.gateway_urls = []
        for i in range(gateways):
            port = free_port()
            self.start(f"gateway-{i}", [switchboard, "gateway", "--listen", f"127.0.0.1:{port}",
                                        "--nats-url", nats, "--token-secret", SECRET, "--gateway-id", f"gw{i}",
                                        "--send-rate", "1000000", "--send-burst", "1000000",
                                        "--anonymous-rate", "1000000", "--anonymous-burst", "1000000",
                                        "--max-connections", "19000", "--max-connections-per-user", "64",
                                        "--max-client-connections", "50000",
                                        "--max-connections-per-address", "0"]
                       + ([] if call_limits else ["--call-rate", "1000000", "--call-burst", "1000000"])
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

    def history_cpu(self):
        return history_cpu_seconds(self.history.proc.pid)

    @staticmethod
    def cli(port, *args):
        return subprocess.run([program("redis-cli"), "-p", str(port)] + list(args),
                              capture_output=True, text=True).stdout

    def counters(self):
        """Redis calls per command (summed over the primaries, and each
        primary's total) and NATS messages in/out, for per-message ratios."""
        calls, by_node = {}, {}
        for port in self.redis_ports:
            total = 0
            for line in self.cli(port, "info", "commandstats").splitlines():
                if line.startswith("cmdstat_"):
                    name, fields = line[len("cmdstat_"):].split(":", 1)
                    n = int(dict(f.split("=") for f in fields.split(","))["calls"])
                    calls[name] = calls.get(name, 0) + n
                    total += n
            by_node[str(port)] = total
        varz = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.nats_monitor}/varz").read())
        return {"redis": calls, "redis_nodes": by_node, "redis_memory": self.used_memory(),
                "nats": {"in_msgs": varz["in_msgs"], "out_msgs": varz["out_msgs"]}}

    def used_memory(self):
        """Redis's used_memory (bytes its allocator handed out), over the primaries."""
        return sum(next(int(line.split(":")[1]) for line in self.cli(port, "info", "memory").splitlines()
                        if line.startswith("used_memory:"))
                   for port in self.redis_ports)

    def expire_retries(self):
        """Deletes the retry records (what their 24 h expiry does later), from
        here (a script would add its own memory to the figure). Returns
        used_memory before and after, and how many were deleted: what one
        record costs, to take out of the growth per message."""
        before = self.used_memory()
        keys = []
        for port in self.redis_ports:
            cli = [program("redis-cli"), "-p", str(port)]
            found = subprocess.run(cli + ["--scan", "--pattern", "sb:idem:*"],
                                   capture_output=True, text=True, check=True).stdout.split()
            # One key per DEL: a cluster refuses a DEL across slots.
            subprocess.run(cli, input="".join(f"DEL {key}\n" for key in found), text=True,
                           capture_output=True, check=True)
            keys += found
        # Redis shrinks the key space's tables a little later (serverCron,
        # once they are under 10 % full): wait until used_memory settles.
        after, deadline = self.used_memory(), time.time() + 5
        while time.time() < deadline:
            time.sleep(0.25)
            now = self.used_memory()
            if now >= after:
                break
            after = now
        return {"with_retries": before, "without_retries": after, "retries": len(keys)}

    def stop(self):
        for p in self.procs.values():
            p.send_signal(signal.SIGKILL)
        for p in self.procs.values():
            p.wait()
        self.history.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# name -> (loadgen arguments, gateways to use: "both" or "first")
SCENARIOS = {
    "transport": (["transport", "--duration", "5"], "both"),
    "idle": (["idle", "--clients", "15000", "--ramp", "1000", "--hold", "5"], "first"),
    "direct-10k": (["direct", "--pairs", "1000", "--rate", "10000", "--duration", "15"], "both"),
    "direct-1k": (["direct", "--pairs", "200", "--rate", "1000", "--duration", "10"], "both"),
    "direct-5k": (["direct", "--pairs", "1000", "--rate", "5000", "--duration", "10"], "both"),
    # Others' latency while one bad actor floods: a history flood against
    # direct-1k, 32 password guessers against direct-1k-owasp (the same with
    # production password hashing, which is what guessing costs). Both with
    # the per-user call budget on, as in production.
    "direct-1k-history-flood": (["direct", "--pairs", "200", "--rate", "1000", "--duration", "10",
                                 "--flood", "history", "--flooders", "16"], "both"),
    "direct-1k-owasp": (["direct", "--pairs", "100", "--rate", "1000", "--duration", "10"], "both"),
    "direct-1k-login-flood": (["direct", "--pairs", "100", "--rate", "1000", "--duration", "10",
                               "--flood", "login", "--flooders", "32"], "both"),
    "direct-5k-stream": (["direct", "--pairs", "1000", "--rate", "5000", "--duration", "10", "--send-via", "stream"],
                         "both"),
    "direct-10k-stream": (["direct", "--pairs", "1000", "--rate", "10000", "--duration", "15", "--send-via", "stream"],
                          "both"),
    "direct-ceiling": (["direct", "--pairs", "1000", "--rate", "{rate}", "--duration", "10"], "both"),
    "group-10": (["group", "--groups", "100", "--members", "10", "--rate", "2000", "--duration", "10"], "both"),
    "group-100": (["group", "--groups", "10", "--members", "100", "--rate", "1000", "--duration", "10"], "both"),
    "group-10000": (["group", "--groups", "1", "--members", "10000", "--rate", "20", "--duration", "10"], "both"),
    "group-10000-5": (["group", "--groups", "1", "--members", "10000", "--rate", "5", "--duration", "10"], "both"),
    "group-100-of-100": (["group", "--groups", "1", "--members", "100", "--rate", "200", "--duration", "10"], "both"),
    "group-100-of-100000": (["group", "--groups", "1", "--members", "100000", "--online", "100", "--rate", "200",
                             "--duration", "10"], "both"),
    "topic-200": (["topic", "--contacts", "200", "--rate", "100", "--duration", "10"], "both"),
    "topic-200-200": (["topic", "--contacts", "200", "--rate", "200", "--duration", "10"], "both"),
    "storm": (["storm", "--clients", "10000"], "both"),
    # 50-message History pages at random depths of a 1M-message conversation.
    "pages-1m": (["pages", "--depth", "1000000", "--rate", "200", "--duration", "10"], "both"),
}


def start_profiles(cluster, out_dir, label):
    perf = shutil.which("perf")
    if not perf:
        sys.exit("--profile needs perf (Debian package linux-perf)")
    recorders = []
    for proc_name, p in cluster.procs.items():
        data = out_dir / f"{label}-{proc_name}.perf.data"
        recorders.append((data, subprocess.Popen(
            [perf, "record", "-q", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,16384",
             "-p", str(p.pid), "-o", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    return recorders


def finish_profiles(recorders):
    for data, recorder in recorders:
        recorder.send_signal(signal.SIGINT)
        recorder.wait()
    for data, _ in recorders:
        stem = str(data).removesuffix(".perf.data")
        report = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--stdio",
                                 "--sort", "symbol", "--percent-limit", "0.7", "-g", "none"],
                                capture_output=True, text=True)
        Path(stem + ".perf.txt").write_text("\n".join(l.rstrip() for l in report.stdout.splitlines()))
        if shutil.which("inferno-collapse-perf") and shutil.which("inferno-flamegraph"):
            script = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True)
            folded = subprocess.run(["inferno-collapse-perf"], input=script.stdout, capture_output=True)
            Path(stem + ".folded").write_bytes(folded.stdout)
            svg = subprocess.run(["inferno-flamegraph"], input=folded.stdout, capture_output=True)
            Path(stem + ".svg").write_bytes(svg.stdout)
        data.unlink()


def window_counts(before, after):
    """Redis commands and NATS messages during the measured window."""
    return {"redis": {c: n - before["redis"].get(c, 0) for c, n in after["redis"].items()
                      if n > before["redis"].get(c, 0)},
            "redis_nodes": {port: n - before["redis_nodes"].get(port, 0) for port, n in after["redis_nodes"].items()},
            "redis_memory": {"before": before["redis_memory"], "after": after["redis_memory"]},
            "nats": {k: v - before["nats"][k] for k, v in after["nats"].items()}}


# Scenarios that need production password hashing (the rest hash cheaply to
# set up their users fast), and those that keep the per-user call budget on
# (the rest lift it: a topic owner or a loaded sender would exceed it).
OWASP_HASHING = {"direct-1k-owasp", "direct-1k-login-flood"}
CALL_LIMITS = {"direct-1k-history-flood", "direct-1k-login-flood", "direct-1k-owasp"}


def run_once(target, name, args, where, rate=None, profile_dir=None, label=None, redis_primaries=0,
             pg_stats_dir=None):
    cluster = Cluster(target, password_hashing="owasp" if name in OWASP_HASHING else "fast-insecure",
                      call_limits=name in CALL_LIMITS, redis_primaries=redis_primaries,
                      pg_stats=pg_stats_dir is not None)
    if pg_stats_dir:
        cluster.history.sql("CREATE EXTENSION pg_stat_statements")
    try:
        gateways = cluster.gateway_urls if where == "both" else cluster.gateway_urls[:1]
        argv = [str(target / "release" / "switchboard-loadgen"), "--json", "--gateways", ",".join(gateways),
                "--sources", "8"] + [a.replace("{rate}", str(rate)) for a in args]
        argv += ["--watch", ",".join(f"{n}={p.pid}" for n, p in cluster.procs.items())]
        if name == "idle":
            argv += ["--gateway-pid", str(cluster.procs["gateway-0"].pid)]
        if name.startswith("pages"):
            argv += ["--history-url", cluster.history.url]
        if name == "transport":
            argv += ["--nats", f"nats://127.0.0.1:{cluster.nats_port}",
                     "--redis", f"redis://127.0.0.1:{cluster.redis_port}"]
        before, counted, counts = cluster.sample(), None, None
        history_before, history_used = None, None
        started = time.time()
        loadgen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stdout = []
        reader = threading.Thread(target=lambda: stdout.extend(loadgen.stdout))
        reader.start()
        stderr, recorders = [], []
        for line in loadgen.stderr:  # profile the measured window only
            stderr.append(line)
            if line.strip() == "loadgen: measuring":
                counted = cluster.counters()
                history_before = cluster.history_cpu()
                if pg_stats_dir:
                    cluster.history.sql("SELECT pg_stat_statements_reset()")
                if profile_dir:
                    recorders = start_profiles(cluster, profile_dir, label)
            elif line.strip() == "loadgen: measured":
                counts = window_counts(counted, cluster.counters())
                if history_before is not None:
                    history_used = cluster.history_cpu() - history_before
                if pg_stats_dir:
                    (pg_stats_dir / f"{label}.pgstats.txt").write_text(cluster.history.sql(PG_STATS_QUERY))
                finish_profiles(recorders)
                recorders = []
        loadgen.wait()
        reader.join()
        finish_profiles(recorders)
        if counts:
            counts["redis_memory"]["expired"] = cluster.expire_retries()
        out = subprocess.CompletedProcess(argv, loadgen.returncode, "".join(stdout), "".join(stderr))
        wall = time.time() - started
        after = cluster.sample()
        reports = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        # The history store's CPU over the same window, as the load
        # generator reports the others' (it cannot watch backends that come
        # and go).
        for report in reports:
            cpu = (report.get("extra") or {}).get("cpu")
            sent = report["messages_per_second"] * report["seconds"]
            if cpu is not None and history_used is not None and sent:
                cpu["history"] = {"cpu_s": round(history_used, 3),
                                  "cpu_us_per_message": round(history_used * 1e6 / sent)}
        if out.returncode != 0 and not reports:
            raise RuntimeError(f"{name}: {out.stderr.strip()}")
        processes = {n: {"cpu_s": round(after[n]["cpu_s"] - before[n]["cpu_s"], 2),
                         "rss_mib": round(after[n]["rss_mib"], 1)} for n in after if n in before}
        return {"scenario": name, "rate": rate, "wall_s": round(wall, 1), "reports": reports,
                "processes": processes, "counts": counts, "clean": out.returncode == 0}
    finally:
        cluster.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ceiling-rates", default="2000,3500,5000,7500")
    parser.add_argument("--profile", action="store_true", help="perf-record every switchboard process")
    parser.add_argument("--rate", type=float, help="override the scenarios' send rate (exploring, not the table)")
    parser.add_argument("--pg-stats", action="store_true",
                        help="write each run's costliest history-store statements (pg_stat_statements) "
                             "over the measured window to <run>.pgstats.txt")
    parser.add_argument("--redis-cluster", type=int, default=0, metavar="N",
                        help="hot state on a Redis Cluster of N primaries (3 or more) instead of one Redis")
    args = parser.parse_args()
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "switchboard-server", "-p", "switchboard-loadgen"],
                   cwd=ROOT, check=True)
    out_dir = ROOT / "bench" / "results" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.scenarios:
        loadgen_args, where = SCENARIOS[name]
        if args.rate and "--rate" in loadgen_args:
            loadgen_args = list(loadgen_args)
            loadgen_args[loadgen_args.index("--rate") + 1] = str(args.rate)
        rates = [int(r) for r in args.ceiling_rates.split(",")] if name == "direct-ceiling" else [None]
        for rate in rates:
            for i in range(args.runs):
                label = f"{name}{'-' + str(rate) if rate else ''}-{i}"
                result = run_once(target, name, loadgen_args, where, rate,
                                  out_dir if args.profile else None, label, args.redis_cluster,
                                  out_dir if args.pg_stats else None)
                (out_dir / f"{label}.json").write_text(json.dumps(result, indent=1))
                print(f"{name} {rate or ''} run {i}: {json.dumps(result['reports'])[:300]}", file=sys.stderr)
    subprocess.run([sys.executable, str(ROOT / "bench" / "summarize.py"), str(out_dir)], check=True)
    print(f"\nresults: {out_dir}")


if __name__ == "__main__":
    main()
