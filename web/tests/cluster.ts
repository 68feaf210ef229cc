// A Switchboard deployment of the browser tests' own, like the Rust suite's
// (tests/e2e/tests/e2e/harness/cluster.rs): its own nats-server, redis-server
// and PostgreSQL (the history store) on free ports, and the real
// `switchboard` binary as presence,
// two routers and two gateways. Everything is killed at the end; one gateway
// can be restarted on the same port (the page's origin) or frozen.

import { generateKeyPairSync } from "node:crypto";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chownSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_DIR = path.resolve(WEB_DIR, "..");
export const SWITCHBOARD_BIN = process.env.SWITCHBOARD_BIN ?? path.join(REPO_DIR, "target/debug/switchboard");
/** The `sb` CLI, built beside it. */
const SB_BIN = path.join(path.dirname(SWITCHBOARD_BIN), "sb");
/** The routers' admin credential (SB_ADMIN_TOKENS `web:<this>`). */
const ADMIN_SECRET = "web-tests-admin-secret-0123456789abcdef";
const SECRET = "browser-test-secret-that-is-long-enough-0123456789";
const START_TIMEOUT_MS = 30_000;

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function findProgram(name: string): string {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/local/sbin", "/usr/bin"];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    if (dir && existsSync(candidate)) return candidate;
  }
  throw new Error(`${name} is not installed (apt-get install ${name})`);
}

/** Where Debian puts PostgreSQL's server programs (the newest version installed). */
function postgresBin(): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((version) => existsSync(path.join(root, version, "bin", "postgres")))
        .sort((a, b) => Number(a) - Number(b))
    : [];
  const newest = versions.at(-1);
  if (!newest) throw new Error("PostgreSQL is not installed (apt-get install postgresql)");
  return path.join(root, newest, "bin");
}

/** Who runs a process: the `postgres` user when we are root (PostgreSQL refuses root). */
interface Owner {
  uid: number;
  gid: number;
}

function postgresOwner(): Owner | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"]).toString().trim());
  return { uid: id("-u"), gid: id("-g") };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true, or throws after `timeoutMs`. */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(delay);
  }
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** gRPC health check (service "" = readiness) over h2c: true when SERVING. */
function healthy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    const done = (ok: boolean) => {
      client.close();
      resolve(ok);
    };
    client.on("error", () => done(false));
    const request = client.request({
      ":method": "POST",
      ":path": "/grpc.health.v1.Health/Check",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("error", () => done(false));
    request.on("end", () => {
      // One length-prefixed HealthCheckResponse: field 1 (status) = 1 (SERVING).
      const body = Buffer.concat(chunks);
      done(body.length >= 7 && body[5] === 0x08 && body[6] === 0x01);
    });
    request.setTimeout(2000, () => {
      request.close();
      done(false);
    });
    // An empty HealthCheckRequest: not compressed, length 0.
    request.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

/** One process of the cluster, and how to start it again. */
export class Node {
  private child?: ChildProcess;
  private exited?: Promise<void>;

  constructor(
    readonly name: string,
    private readonly program: string,
    private readonly args: string[],
    /** The port readiness is checked on (a gateway's clients, the others' health). */
    readonly port: number,
    private readonly logFile: string,
    private readonly ready: "health" | "port",
    private readonly owner?: Owner,
  ) {}

  start(): void {
    const log = createWriteStream(this.logFile, { flags: "a" });
    const child = spawn(this.program, this.args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: process.env.SB_TEST_LOG ?? "info" },
      ...this.owner,
    });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  }

  async waitReady(): Promise<void> {
    const child = this.child;
    await eventually(`${this.name} to be ready`, async () => {
      if (!child || child.exitCode !== null) {
        throw new Error(`${this.name} exited:\n${this.logTail()}`);
      }
      if (this.ready === "port") return portOpen(this.port);
      return (await portOpen(this.port)) && (await healthy(this.port));
    }).catch((err) => {
      throw new Error(`${err.message}\n--- ${this.name} log ---\n${this.logTail()}`);
    });
  }

  /** SIGKILL (a crash), and wait until it is gone. */
  async kill(): Promise<void> {
    await this.signal("SIGKILL");
  }

  /** SIGTERM (a rolling restart: the gateway drains), waiting up to `graceMs`. */
  async terminate(graceMs = 5000): Promise<void> {
    const exited = this.exited;
    this.child?.kill("SIGTERM");
    const inTime = await Promise.race([exited?.then(() => true), sleep(graceMs).then(() => false)]);
    if (!inTime) await this.kill();
    this.child = undefined;
  }

  /** SIGSTOP: the process holds its connections and says nothing (a hung gateway). */
  freeze(): void {
    this.child?.kill("SIGSTOP");
  }

  thaw(): void {
    this.child?.kill("SIGCONT");
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGCONT");
    child.kill(signal);
    await this.exited;
    this.child = undefined;
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }
}

export interface ClusterOptions {
  /** Where logs and data go (kept after the run for a look). */
  dir: string;
}

export class Cluster {
  readonly nodes: Node[] = [];
  gateways: Node[] = [];
  routers: Node[] = [];
  /** A port for a page of another origin that the gateways allow (CORS). */
  appPort = 0;
  /**
   * A port for the tests' Web Push service: the routers trust it
   * (`--push-services`) and sign pushes with a VAPID key of this run's.
   */
  pushPort = 0;

  private constructor(readonly dir: string) {}

  /** NATS, Redis, PostgreSQL, presence, 2 routers and 2 gateways, all ready. */
  static async start(options: ClusterOptions): Promise<Cluster> {
    if (!existsSync(SWITCHBOARD_BIN)) {
      throw new Error(`no switchboard binary at ${SWITCHBOARD_BIN} (cargo build -p switchboard-server)`);
    }
    rmSync(options.dir, { recursive: true, force: true });
    mkdirSync(options.dir, { recursive: true });
    const cluster = new Cluster(options.dir);
    try {
      await cluster.boot();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  private async boot(): Promise<void> {
    const dir = this.dir;
    const [natsPort, redisPort] = await Promise.all([freePort(), freePort()]);
    const nats = new Node(
      "nats-server",
      findProgram("nats-server"),
      ["-a", "127.0.0.1", "-p", String(natsPort), "-js", "-sd", path.join(dir, "nats")],
      natsPort,
      path.join(dir, "nats.log"),
      "port",
    );
    mkdirSync(path.join(dir, "redis"), { recursive: true });
    const redis = new Node(
      "redis-server",
      findProgram("redis-server"),
      [
        "--port", String(redisPort),
        "--bind", "127.0.0.1",
        "--dir", path.join(dir, "redis"),
        "--appendonly", "yes",
        "--save", "",
        "--maxmemory-policy", "noeviction",
      ],
      redisPort,
      path.join(dir, "redis.log"),
      "port",
    );
    const postgres = await this.postgres();
    this.nodes.push(nats, redis, postgres.node);
    nats.start();
    redis.start();
    postgres.node.start();
    await Promise.all([nats.waitReady(), redis.waitReady(), postgres.node.waitReady()]);

    const natsUrl = `nats://127.0.0.1:${natsPort}`;
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    const role = async (name: string, args: string[], ready: "health" | "port" = "health") => {
      const port = await freePort();
      const listen = args[0] === "gateway" ? "--listen" : "--health-listen";
      const node = new Node(
        name,
        SWITCHBOARD_BIN,
        [...args, listen, `127.0.0.1:${port}`, "--log-format", "text"],
        port,
        path.join(dir, `${name}.log`),
        ready,
      );
      this.nodes.push(node);
      return node;
    };
    const common = ["--nats-url", natsUrl];
    this.appPort = await freePort();
    this.pushPort = await freePort();
    const vapidKey = path.join(dir, "vapid.pem");
    writeFileSync(
      vapidKey,
      generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }),
    );
    const services = [
      await role("presence", ["presence", ...common, "--redis-url", redisUrl, "--reap-every-ms", "250"]),
      ...(await Promise.all(
        [0, 1].map((i) =>
          role(`router-${i}`, [
            "router", ...common,
            "--redis-url", redisUrl,
            "--token-secret", SECRET,
            "--password-hashing", "fast-insecure",
            "--history-url", postgres.url,
            "--outbox-redeliver-ms", "1000",
            "--admin-tokens", `web:${ADMIN_SECRET}`,
            "--vapid-private-key", vapidKey,
            "--push-services", `127.0.0.1:${this.pushPort}`,
          ]),
        ),
      )),
    ];
    this.gateways = await Promise.all(
      [0, 1].map((i) =>
        role(`gw${i}`, [
          "gateway", ...common,
          "--token-secret", SECRET,
          "--gateway-id", `gw${i}`,
          "--presence-ttl-ms", "2000",
          "--presence-heartbeat-ms", "500",
          "--client-heartbeat-ms", "1000",
          "--drain-grace-ms", "2000",
          "--allowed-origins", this.appOrigin(),
        ]),
      ),
    );
    this.routers = services.slice(1);
    for (const node of [...services, ...this.gateways]) node.start();
    await Promise.all([...services, ...this.gateways].map((node) => node.waitReady()));
    await this.checkPageIsCurrent();
  }

  /**
   * The history store: initdb into the cluster's directory, durable commits on
   * (as the history store requires). Routers wait until it serves sessions.
   */
  private async postgres(): Promise<{ node: Node; url: string }> {
    const bin = postgresBin();
    const home = path.join(this.dir, "postgres");
    mkdirSync(home, { recursive: true });
    const owner = postgresOwner();
    if (owner) chownSync(home, owner.uid, owner.gid);
    execFileSync(
      path.join(bin, "initdb"),
      ["-D", path.join(home, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
      { stdio: "ignore", ...owner },
    );
    const port = await freePort();
    const node = new Node(
      "postgres",
      path.join(bin, "postgres"),
      [
        "-D", path.join(home, "data"),
        "-p", String(port),
        "-k", home,
        "-c", "listen_addresses=127.0.0.1",
        "-c", "fsync=on",
        "-c", "synchronous_commit=on",
      ],
      port,
      path.join(this.dir, "postgres.log"),
      "port",
      owner,
    );
    return { node, url: `postgres://postgres@127.0.0.1:${port}/postgres` };
  }

  /** The origin the gateways let call them from a page of its own. */
  appOrigin(): string {
    return `http://127.0.0.1:${this.appPort}`;
  }

  /**
   * An operator's `sb admin …` against router 0's internal port, as the
   * operator runs it; its JSON lines.
   */
  admin(...args: string[]): unknown[] {
    const out = execFileSync(
      SB_BIN,
      ["--json", "--home", path.join(this.dir, "sb"), "--server", `http://127.0.0.1:${this.routers[0]!.port}`,
        "admin", "--token", ADMIN_SECRET, ...args],
      { encoding: "utf8" },
    );
    return out
      .split("\n")
      .filter((line) => line.trim())
      .map((line) => JSON.parse(line) as unknown);
  }

  /** The page's address on gateway `i` (its own origin). */
  url(i: number): string {
    return `http://127.0.0.1:${this.gateways[i]!.port}`;
  }

  /**
   * The gateway embeds web/dist at compile time: a binary built before the
   * last `npm run build` would test an old page.
   */
  private async checkPageIsCurrent(): Promise<void> {
    const served = await (await fetch(`${this.url(0)}/`)).text();
    const built = readFileSync(path.join(WEB_DIR, "dist/index.html"), "utf8");
    if (served !== built) {
      throw new Error(
        `the gateway serves another build of the page than web/dist: rebuild the binary ` +
          `(cd ${REPO_DIR} && cargo build -p switchboard-server) after npm run build`,
      );
    }
  }

  /** Stops gateway `i` (SIGTERM: it drains; or SIGKILL: a crash) without starting it again. */
  async stopGateway(i: number, how: "terminate" | "kill"): Promise<void> {
    const gateway = this.gateways[i]!;
    if (how === "kill") await gateway.kill();
    else await gateway.terminate();
  }

  /** Starts gateway `i` again on the same port. */
  async startGateway(i: number): Promise<void> {
    const gateway = this.gateways[i]!;
    gateway.start();
    await gateway.waitReady();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.nodes].reverse().map((node) => node.kill()));
  }

  logs(): string {
    return this.nodes.map((node) => `===== ${node.name} =====\n${node.logTail(30)}`).join("\n");
  }
}

export function defaultClusterDir(): string {
  return path.join(WEB_DIR, "test-results", "cluster");
}
