//! `nats-server` and `redis-server` processes of a test's own.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{ChildProcess, find_program, free_port};

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A NATS server (with JetStream) on a free port.
pub struct NatsServer {
    pub port: u16,
    dir: TempDir,
    process: ChildProcess,
}

impl NatsServer {
    pub fn start() -> Self {
        Self::start_with(None, &[])
    }

    /// With a configuration file's text (written beside the server's data)
    /// and environment variables for it to read.
    pub fn start_with(config: Option<&str>, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        if let Some(config) = config {
            std::fs::write(dir.path().join("nats.conf"), config).expect("write nats.conf");
        }
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let process = Self::spawn(port, &dir, &env);
        Self { port, dir, process }
    }

    /// Where a configuration file may put files it includes.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    fn spawn(port: u16, dir: &TempDir, env: &[(String, String)]) -> ChildProcess {
        let mut command = Command::new(find_program("nats-server"));
        let config = dir.path().join("nats.conf");
        if config.exists() {
            command.arg("-c").arg(&config);
        }
        command
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(dir.path().join("js"))
            .envs(env.iter().map(|(k, v)| (k, v)));
        let mut process = ChildProcess::spawn("nats-server", command, &dir.path().join("nats.log"));
        process.wait_for_port(port, START_TIMEOUT);
        process
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port (without the environment it started with).
    pub fn restart(&mut self) {
        self.process.kill();
        self.process = Self::spawn(self.port, &self.dir, &[]);
    }
}

/// A Redis server on a free port, with AOF on (`appendfsync everysec`) in a
/// directory of its own, so a restart finds what was acknowledged.
pub struct RedisServer {
    pub port: u16,
    dir: TempDir,
    extra: Vec<String>,
    process: ChildProcess,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With extra `redis-server` arguments (e.g. ACL users).
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let process = Self::spawn(port, &dir, &extra);
        Self {
            port,
            dir,
            extra,
            process,
        }
    }

    fn spawn(port: u16, dir: &TempDir, extra: &[String]) -> ChildProcess {
        let mut command = Command::new(find_program("redis-server"));
        command
            .arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(dir.path())
            .arg("--appendonly")
            .arg("yes")
            .arg("--appendfsync")
            .arg("everysec")
            .arg("--save")
            .arg("")
            .arg("--maxmemory-policy")
            .arg("noeviction")
            .args(extra);
        let mut process =
            ChildProcess::spawn("redis-server", command, &dir.path().join("redis.log"));
        process.wait_for_port(port, START_TIMEOUT);
        process
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// SIGKILL: no shutdown, no final fsync.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGSTOP: it keeps its connections and answers nothing (a stalled
    /// Redis). Returns once every thread of it has stopped.
    pub fn pause(&self) {
        self.process.stop();
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) {
        self.process.signal(nix::sys::signal::Signal::SIGCONT);
    }

    /// A Redis server on `port` (which something else may have been told to
    /// use before it existed).
    pub fn start_on(port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let process = Self::spawn(port, &dir, &[]);
        Self {
            port,
            dir,
            extra: Vec::new(),
            process,
        }
    }

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.process.kill();
        self.process = Self::spawn(self.port, &self.dir, &self.extra);
    }

    /// Starts it again with an empty data directory (all data lost).
    pub fn restart_empty(&mut self) {
        self.process.kill();
        for entry in std::fs::read_dir(self.dir.path())
            .expect("read redis dir")
            .flatten()
        {
            if entry.file_name() != "redis.log" {
                let path = entry.path();
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
        self.process = Self::spawn(self.port, &self.dir, &self.extra);
    }
}
