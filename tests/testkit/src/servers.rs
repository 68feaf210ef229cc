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
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let process = Self::spawn(port, &dir);
        Self { port, dir, process }
    }

    fn spawn(port: u16, dir: &TempDir) -> ChildProcess {
        let mut command = Command::new(find_program("nats-server"));
        command
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(port.to_string())
            .arg("-js")
            .arg("-sd")
            .arg(dir.path().join("js"));
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

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.process.kill();
        self.process = Self::spawn(self.port, &self.dir);
    }
}

/// A Redis server on a free port, with AOF on (`appendfsync everysec`) in a
/// directory of its own, so a restart finds what was acknowledged.
pub struct RedisServer {
    pub port: u16,
    dir: TempDir,
    process: ChildProcess,
}

impl RedisServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let process = Self::spawn(port, &dir);
        Self { port, dir, process }
    }

    fn spawn(port: u16, dir: &TempDir) -> ChildProcess {
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
            .arg("noeviction");
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

    /// Starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.process.kill();
        self.process = Self::spawn(self.port, &self.dir);
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
        self.process = Self::spawn(self.port, &self.dir);
    }
}
