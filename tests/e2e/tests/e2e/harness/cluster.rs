//! A Switchboard deployment of the test's own: its own nats-server and
//! redis-server (or Redis Cluster), and the real `switchboard` binary as gateway, router and
//! presence processes (or one standalone process). Everything is killed
//! when the cluster is dropped; on a failing test the logs are printed.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use switchboard_testkit::{
    ChildProcess, NatsServer, PostgresServer, RedisCluster, RedisServer, eventually, free_port,
};
use tempfile::TempDir;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::WAIT;
use super::client::User;

pub const NODE: &str = env!("CARGO_BIN_EXE_switchboard-node");
pub const CLI: &str = env!("CARGO_BIN_EXE_sb-node");
pub const SECRET: &str = "e2e-test-secret-that-is-long-enough-0123456789";
/// The admin credential every router (and standalone process) accepts: name `e2e`.
pub const ADMIN_SECRET: &str = "e2e-admin-secret-that-is-long-enough-0123456789";

#[derive(Debug, Clone, Copy)]
pub enum Mode {
    Distributed { gateways: usize, routers: usize },
    Standalone,
}

impl Mode {
    pub fn distributed() -> Self {
        Self::Distributed {
            gateways: 2,
            routers: 2,
        }
    }
}

/// What a cluster runs with besides the defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra flags for every gateway (limits).
    pub gateway_args: Vec<String>,
    /// NATS users per role (deploy/nats/permissions.conf) and a Redis ACL
    /// user limited to `sb:*` keys; no anonymous access to either.
    pub credentials: bool,
    /// Serve Prometheus metrics on a port per process.
    pub metrics: bool,
    /// Environment variables for every switchboard process.
    pub env: Vec<(String, String)>,
    /// Extra flags for every router (and the standalone process).
    pub router_args: Vec<String>,
    /// An open-file limit (`ulimit -n`) for the gateways (and the
    /// standalone process).
    pub fd_limit: Option<u64>,
    /// Production password hashing (`owasp`) instead of the tests' cheap one.
    pub owasp_hashing: bool,
    /// Hot state on a Redis Cluster (3 primaries, a replica each) instead
    /// of one Redis.
    pub redis_cluster: bool,
    /// Gateways (and the standalone process) serve clients over TLS, with a
    /// certificate of the tests' CA (`harness::test_ca`), reloaded every 100 ms.
    pub tls: bool,
}

impl Options {
    fn hashing(&self) -> &'static str {
        if self.owasp_hashing {
            "owasp"
        } else {
            "fast-insecure"
        }
    }

    pub fn gateway_args(args: &[&str]) -> Self {
        Self {
            gateway_args: args.iter().map(|a| (*a).to_owned()).collect(),
            ..Self::default()
        }
    }
}

const NATS_PASSWORDS: [(&str, &str, &str); 3] = [
    ("gateway", "SWITCHBOARD_GATEWAY_PASSWORD", "gateway-secret"),
    ("router", "SWITCHBOARD_ROUTER_PASSWORD", "router-secret"),
    (
        "presence",
        "SWITCHBOARD_PRESENCE_PASSWORD",
        "presence-secret",
    ),
];
const REDIS_USER: &str = "switchboard";
const REDIS_PASSWORD: &str = "redis-secret";

/// One switchboard process and how to start it again.
pub struct Node {
    pub name: String,
    args: Vec<String>,
    /// The port its readiness is checked on (gateway: clients; others: health).
    pub port: u16,
    /// Where its Prometheus metrics are, when the cluster serves them.
    pub metrics_port: Option<u16>,
    env: Vec<(String, String)>,
    fd_limit: Option<u64>,
    /// Its certificate and key, when it serves clients over TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    log: PathBuf,
    process: Option<ChildProcess>,
}

impl Node {
    fn spawn(&mut self) {
        let mut command = match self.fd_limit {
            // Through a shell that lowers the limit, then becomes the node.
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(NODE);
                shell
            }
            None => Command::new(NODE),
        };
        command
            .args(&self.args)
            .env("RUST_LOG", "info,switchboard=debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        self.process = Some(ChildProcess::spawn(&self.name, command, &self.log));
    }

    async fn wait_ready(&mut self) {
        let process = self.process.as_mut().expect("started");
        process.wait_for_port(self.port, WAIT);
        let url = self.url();
        eventually(WAIT, &format!("{} to report ready", self.name), || {
            let url = url.clone();
            async move {
                let channel = super::client::endpoint(&url).connect().await.ok()?;
                let mut health = HealthClient::new(channel);
                let status = health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .status();
                (status == ServingStatus::Serving).then_some(())
            }
        })
        .await;
    }

    /// Where it serves (gRPC, health): https:// when it speaks TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGTERM, waiting up to `grace` for a clean exit; true if it exited in time.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        let exited = self
            .process
            .as_mut()
            .and_then(|p| p.terminate(grace))
            .is_some();
        self.process = None;
        exited
    }

    /// Sets `flag` to `value` for the next start (replacing it if given).
    pub fn set_flag(&mut self, flag: &str, value: &str) {
        match self.args.iter().position(|a| a == flag) {
            Some(i) => self.args[i + 1] = value.to_owned(),
            None => self.args.extend([flag.to_owned(), value.to_owned()]),
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready().await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ChildProcess::pid)
    }
}

pub struct Cluster {
    pub mode: Mode,
    pub nats: Option<NatsServer>,
    pub redis: Option<RedisServer>,
    /// The Redis Cluster, when the options asked for one.
    pub redis_cluster: Option<RedisCluster>,
    /// The history store (distributed mode).
    pub history: Option<PostgresServer>,
    pub presence: Option<Node>,
    pub routers: Vec<Node>,
    pub gateways: Vec<Node>,
    dir: TempDir,
}

impl Cluster {
    pub async fn start(mode: Mode) -> Self {
        Self::start_with(mode, Options::default()).await
    }

    pub async fn start_with(mode: Mode, options: Options) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cluster = Self {
            mode,
            nats: None,
            redis: None,
            redis_cluster: None,
            history: None,
            presence: None,
            routers: Vec::new(),
            gateways: Vec::new(),
            dir,
        };
        match mode {
            Mode::Standalone => {
                let port = free_port();
                let data = cluster.dir.path().join("data");
                let node = cluster.node(
                    "standalone",
                    port,
                    vec![
                        "standalone".into(),
                        "--listen".into(),
                        format!("127.0.0.1:{port}"),
                        "--data-dir".into(),
                        data.display().to_string(),
                        "--password-hashing".into(),
                        options.hashing().into(),
                        "--client-heartbeat-ms".into(),
                        "1000".into(),
                    ]
                    .into_iter()
                    .chain(options.gateway_args.iter().cloned())
                    .collect(),
                    &options,
                );
                cluster.gateways.push(node);
            }
            Mode::Distributed { gateways, routers } => {
                assert!(
                    !(options.credentials && options.redis_cluster),
                    "credentials are tested on one Redis"
                );
                let (nats, redis) = if options.credentials {
                    let permissions = include_str!("../../../../../deploy/nats/permissions.conf");
                    let env: Vec<(&str, &str)> = NATS_PASSWORDS
                        .iter()
                        .map(|(_, var, pw)| (*var, *pw))
                        .collect();
                    let nats = NatsServer::start_with(Some(permissions), &env);
                    // Only Switchboard's keys; no anonymous default user.
                    let secret = format!(">{REDIS_PASSWORD}");
                    let redis = RedisServer::start_with(&[
                        "--user", "default", "off", "--user", REDIS_USER, "on", &secret, "~sb:*",
                        "+@all",
                    ]);
                    (nats, redis)
                } else {
                    (NatsServer::start(), RedisServer::start())
                };
                let nats_url = nats.url();
                let redis_url = if options.credentials {
                    format!(
                        "redis://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{}",
                        redis.port
                    )
                } else {
                    redis.url()
                };
                cluster.nats = Some(nats);
                let redis_url = if options.redis_cluster {
                    drop(redis);
                    let redis_cluster = RedisCluster::start(3, 1);
                    let url = redis_cluster.url();
                    cluster.redis_cluster = Some(redis_cluster);
                    url
                } else {
                    cluster.redis = Some(redis);
                    redis_url
                };
                // Messages live in a history store of the cluster's own.
                let history = PostgresServer::start();
                let history_url = history.url();
                cluster.history = Some(history);
                let port = free_port();
                cluster.presence = Some(cluster.node(
                    "presence",
                    port,
                    vec![
                        "presence".into(),
                        "--nats-url".into(),
                        nats_url.clone(),
                        "--redis-url".into(),
                        redis_url.clone(),
                        "--health-listen".into(),
                        format!("127.0.0.1:{port}"),
                        "--reap-every-ms".into(),
                        "250".into(),
                    ],
                    &options,
                ));
                for i in 0..routers {
                    let port = free_port();
                    let node = cluster.node(
                        &format!("router-{i}"),
                        port,
                        vec![
                            "router".into(),
                            "--nats-url".into(),
                            nats_url.clone(),
                            "--redis-url".into(),
                            redis_url.clone(),
                            "--token-secret".into(),
                            SECRET.into(),
                            "--health-listen".into(),
                            format!("127.0.0.1:{port}"),
                            "--password-hashing".into(),
                            options.hashing().into(),
                            "--outbox-redeliver-ms".into(),
                            "1000".into(),
                            "--history-url".into(),
                            history_url.clone(),
                        ],
                        &options,
                    );
                    cluster.routers.push(node);
                }
                for i in 0..gateways {
                    let port = free_port();
                    let node = cluster.node(
                        &format!("gw{i}"),
                        port,
                        vec![
                            "gateway".into(),
                            "--listen".into(),
                            format!("127.0.0.1:{port}"),
                            "--nats-url".into(),
                            nats_url.clone(),
                            "--token-secret".into(),
                            SECRET.into(),
                            "--gateway-id".into(),
                            format!("gw{i}"),
                            "--presence-ttl-ms".into(),
                            "2000".into(),
                            "--presence-heartbeat-ms".into(),
                            "500".into(),
                            "--client-heartbeat-ms".into(),
                            "1000".into(),
                            "--drain-grace-ms".into(),
                            "3000".into(),
                        ]
                        .into_iter()
                        .chain(options.gateway_args.iter().cloned())
                        .collect(),
                        &options,
                    );
                    cluster.gateways.push(node);
                }
            }
        }
        for node in cluster
            .presence
            .iter_mut()
            .chain(cluster.routers.iter_mut())
            .chain(cluster.gateways.iter_mut())
        {
            node.spawn();
        }
        for node in cluster
            .presence
            .iter_mut()
            .chain(cluster.routers.iter_mut())
            .chain(cluster.gateways.iter_mut())
        {
            node.wait_ready().await;
        }
        cluster
    }

    fn node(&self, name: &str, port: u16, mut args: Vec<String>, options: &Options) -> Node {
        args.extend(["--log-format".into(), "text".into()]);
        let role = args[0].clone();
        // Tests send in bursts on purpose; the rate limit has a test of its own.
        let serves_clients = role == "gateway" || role == "standalone";
        if serves_clients && !args.iter().any(|a| a == "--send-rate") {
            args.extend([
                "--send-rate".into(),
                "100000".into(),
                "--send-burst".into(),
                "100000".into(),
            ]);
        }
        if serves_clients && !args.iter().any(|a| a == "--anonymous-rate") {
            args.extend([
                "--anonymous-rate".into(),
                "100000".into(),
                "--anonymous-burst".into(),
                "100000".into(),
            ]);
        }
        if serves_clients && !args.iter().any(|a| a == "--call-rate") {
            args.extend([
                "--call-rate".into(),
                "100000".into(),
                "--call-burst".into(),
                "100000".into(),
            ]);
        }
        if options.credentials
            && let Some((user, _, password)) = NATS_PASSWORDS.iter().find(|(r, _, _)| *r == role)
        {
            args.extend([
                "--nats-user".into(),
                format!("switchboard-{user}"),
                "--nats-password".into(),
                (*password).into(),
            ]);
        }
        if role == "router" || role == "standalone" {
            args.extend(["--admin-tokens".into(), format!("e2e:{ADMIN_SECRET}")]);
            args.extend(options.router_args.iter().cloned());
        }
        let tls = (options.tls && serves_clients).then(|| {
            let dir = self.dir.path().join(format!("{name}-tls"));
            std::fs::create_dir_all(&dir).expect("a directory for the certificate");
            let (cert, key) = super::test_ca().issue(name).write(&dir);
            args.extend([
                "--tls-cert".into(),
                cert.display().to_string(),
                "--tls-key".into(),
                key.display().to_string(),
                "--tls-reload-ms".into(),
                "100".into(),
            ]);
            (cert, key)
        });
        let metrics_port = options.metrics.then(free_port);
        if let Some(port) = metrics_port {
            args.extend(["--metrics-listen".into(), format!("127.0.0.1:{port}")]);
        }
        Node {
            name: name.to_owned(),
            args,
            port,
            metrics_port,
            env: options.env.clone(),
            fd_limit: options
                .fd_limit
                .filter(|_| role == "gateway" || role == "standalone"),
            tls,
            log: self.dir.path().join(format!("{name}.log")),
            process: None,
        }
    }

    pub fn is_distributed(&self) -> bool {
        matches!(self.mode, Mode::Distributed { .. })
    }

    /// Address of gateway `i` (wrapping around, so the standalone mode's one
    /// gateway serves every index).
    pub fn gateway_url(&self, i: usize) -> String {
        self.gateways[i % self.gateways.len()].url()
    }

    /// Registers and logs in `name` through gateway `gateway`.
    /// Where the admin API is: a router's internal port, or the
    /// standalone process's client port.
    pub fn admin_url(&self) -> String {
        match self.mode {
            Mode::Standalone => self.gateway_url(0),
            _ => self.routers[0].url(),
        }
    }

    pub async fn user(&self, name: &str, gateway: usize) -> User {
        User::register(self, name, gateway, "laptop").await
    }

    /// The key session tokens are signed with: the shared secret of the
    /// distributed deployment, or the one the standalone process keeps
    /// beside its data. Tests forge tokens with it.
    pub fn token_key(&self) -> switchboard_shared::token::TokenKey {
        let secret = match self.mode {
            Mode::Distributed { .. } => SECRET.as_bytes().to_vec(),
            Mode::Standalone => std::fs::read(self.dir.path().join("data").join("token.key"))
                .expect("the standalone token key"),
        };
        switchboard_shared::token::TokenKey::new(secret).expect("a valid key")
    }

    pub fn redis(&mut self) -> &mut RedisServer {
        self.redis
            .as_mut()
            .expect("a distributed cluster on one Redis")
    }

    /// The Redis Cluster of a cluster started with `redis_cluster`.
    pub fn redis_cluster(&mut self) -> &mut RedisCluster {
        self.redis_cluster
            .as_mut()
            .expect("a cluster on a Redis Cluster")
    }

    /// The history store (PostgreSQL) of a distributed cluster.
    pub fn history(&mut self) -> &mut PostgresServer {
        self.history.as_mut().expect("a distributed cluster")
    }
}

impl Drop for Cluster {
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in self
                .presence
                .iter()
                .chain(self.routers.iter())
                .chain(self.gateways.iter())
            {
                let log = node.log();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!("===== {} (last lines) =====", node.name);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}
